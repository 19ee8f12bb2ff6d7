package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/walship/walship/storage"
)

// The records part of the suite: conditional create and replace, and that
// of many writers racing for one version exactly one wins.

const testRecord = "walship-test.json"

func readRecord(t *testing.T, c storage.Client, name string) ([]byte, string) {
	t.Helper()
	data, version, err := c.ReadRecord(context.Background(), name)
	if err != nil {
		t.Fatalf("read record %s: %v", name, err)
	}
	if version == "" {
		t.Fatalf("read record %s: an empty version", name)
	}
	return data, version
}

func testRecordMissing(t *testing.T, c storage.Client) {
	if _, _, err := c.ReadRecord(context.Background(), testRecord); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("reading a missing record: %v; want an error wrapping storage.ErrNotFound", err)
	}
	// A replace of a record that does not exist is a conflict, not a create.
	if _, err := c.WriteRecord(context.Background(), testRecord, []byte(`{"a":1}`), "1"); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("replacing a missing record: %v; want an error wrapping storage.ErrConflict", err)
	}
	if _, _, err := c.ReadRecord(context.Background(), testRecord); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a refused replace left a record: %v", err)
	}
}

func testRecordCreateReplace(t *testing.T, c storage.Client) {
	ctx := context.Background()
	first := []byte(`{"owner":"first"}`)
	v1, err := c.WriteRecord(ctx, testRecord, first, "")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	data, v := readRecord(t, c, testRecord)
	if !bytes.Equal(data, first) || v != v1 {
		t.Fatalf("read back %q version %q; wrote %q, version %q", data, v, first, v1)
	}
	// A second create is refused and changes nothing.
	if _, err := c.WriteRecord(ctx, testRecord, []byte(`{"owner":"second"}`), ""); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("creating an existing record: %v; want an error wrapping storage.ErrConflict", err)
	}
	if data, _ := readRecord(t, c, testRecord); !bytes.Equal(data, first) {
		t.Fatalf("a refused create changed the record to %q", data)
	}
	// A replace at the current version succeeds and changes the version,
	// even when the content is the same length.
	second := []byte(`{"owner":"secnd"}`)
	v2, err := c.WriteRecord(ctx, testRecord, second, v1)
	if err != nil {
		t.Fatalf("replace at the current version: %v", err)
	}
	if v2 == v1 {
		t.Fatalf("a replace kept the version %q", v1)
	}
	if data, v := readRecord(t, c, testRecord); !bytes.Equal(data, second) || v != v2 {
		t.Fatalf("after the replace read %q version %q; want %q version %q", data, v, second, v2)
	}
	// A replace at a stale version is refused and changes nothing.
	if _, err := c.WriteRecord(ctx, testRecord, []byte(`{"owner":"stale"}`), v1); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("replace at a stale version: %v; want an error wrapping storage.ErrConflict", err)
	}
	if data, _ := readRecord(t, c, testRecord); !bytes.Equal(data, second) {
		t.Fatalf("a refused replace changed the record to %q", data)
	}
	// Records are not LTX files: no level lists them.
	for level := 0; level <= storage.MaxLevel; level++ {
		if files := list(t, c, level); len(files) != 0 {
			t.Fatalf("level %d lists %d files after writing only a record", level, len(files))
		}
	}
}

// testRecordRace starts writers at once, all creating the record, then all
// replacing the same version: each time exactly one must win, and the
// record must hold the winner's content.
func testRecordRace(t *testing.T, c storage.Client) {
	const writers = 8
	race := func(version string) (winner []byte, newVersion string) {
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			wins  [][]byte
			vers  []string
			other []error
		)
		start := make(chan struct{})
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data := fmt.Appendf(nil, `{"writer":%d,"after":%q}`, i, version)
				<-start
				v, err := c.WriteRecord(context.Background(), testRecord, data, version)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins, vers = append(wins, data), append(vers, v)
				case !errors.Is(err, storage.ErrConflict):
					other = append(other, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		for _, err := range other {
			t.Errorf("a losing writer's error does not wrap storage.ErrConflict: %v", err)
		}
		if len(wins) != 1 {
			t.Fatalf("%d of %d writers racing from version %q succeeded; exactly one must", len(wins), writers, version)
		}
		data, v := readRecord(t, c, testRecord)
		if !bytes.Equal(data, wins[0]) || v != vers[0] {
			t.Fatalf("the record holds %q version %q; the winner wrote %q, version %q", data, v, wins[0], vers[0])
		}
		return wins[0], vers[0]
	}
	_, v := race("")
	race(v)
}

func testRecordChecks(t *testing.T, c storage.Client) {
	ctx := context.Background()
	for _, name := range []string{"", "a/b", "..", ".hidden", "ltx", "0000000000000001-0000000000000001.ltx"} {
		if _, err := c.WriteRecord(ctx, name, []byte("{}"), ""); err == nil {
			t.Errorf("a record named %q was written", name)
		}
	}
	if _, err := c.WriteRecord(ctx, testRecord, make([]byte, storage.MaxRecordSize+1), ""); err == nil {
		t.Error("a record larger than MaxRecordSize was written")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.WriteRecord(cctx, testRecord, []byte("{}"), ""); err == nil {
		t.Error("a record write with a cancelled context succeeded")
	}
	if _, _, err := c.ReadRecord(ctx, testRecord); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("refused writes left a record: %v", err)
	}
}
