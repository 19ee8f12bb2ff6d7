package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/storage"
)

// Put stores data as the object name (relative to the replica's path) of
// the destination under test, the way another tool would: straight through
// the store's own API, not through the client. It may be called from several
// goroutines at once.
type Put func(name string, data []byte) error

// RunObjects runs the suite of storage.Objects, the read-only access to any
// object under a replica's path. newDest returns a client of an empty,
// unique destination, which must implement storage.Objects, and a Put that
// writes objects there.
func RunObjects(t *testing.T, newDest func(t *testing.T) (storage.Client, Put)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c storage.Client, o storage.Objects, put Put)
	}{
		{"Empty", testObjectsEmpty},
		{"Nested", testObjectsNested},
		{"Open", testObjectsOpen},
		{"LTXFiles", testObjectsLTX},
		{"Names", testObjectsNames},
		{"Many", testObjectsMany},
		{"Cancelled", testObjectsCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, put := newDest(t)
			o, ok := c.(storage.Objects)
			if !ok {
				t.Fatalf("%T does not implement storage.Objects", c)
			}
			tt.fn(t, c, o, put)
		})
	}
}

func listObjects(t *testing.T, o storage.Objects, dir string) []storage.ObjectInfo {
	t.Helper()
	objs, err := o.ListObjects(context.Background(), dir)
	if err != nil {
		t.Fatalf("list %q: %v", dir, err)
	}
	return objs
}

func putObject(t *testing.T, put Put, name string, data []byte) {
	t.Helper()
	if err := put(name, data); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

func readObject(t *testing.T, o storage.Objects, name string) []byte {
	t.Helper()
	rc, err := o.OpenObject(context.Background(), name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func names(objs []storage.ObjectInfo) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Name)
	}
	return out
}

func testObjectsEmpty(t *testing.T, _ storage.Client, o storage.Objects, _ Put) {
	for _, dir := range []string{"", "generations/", "generations/0123456789abcdef/wal/"} {
		if objs := listObjects(t, o, dir); objs == nil || len(objs) != 0 {
			t.Fatalf("a new destination lists %#v under %q; want an empty list", objs, dir)
		}
	}
}

func testObjectsNested(t *testing.T, _ storage.Client, o storage.Objects, put Put) {
	objects := map[string][]byte{
		"generations/0123456789abcdef/snapshots/00000000.snapshot.lz4": []byte("snapshot"),
		"generations/0123456789abcdef/wal/00000000_00000000.wal.lz4":   []byte("segment one"),
		"generations/fedcba9876543210/wal/00000001_00001038.wal.lz4":   []byte("segment two, longer"),
		"generationsX/other": []byte("a sibling that only shares the prefix's letters"),
		"top.txt":            []byte("at the top"),
	}
	// The stores date objects by their own clocks, some to the second.
	before := time.Now().Add(-2 * time.Second).Truncate(time.Second)
	for _, name := range slices.Sorted(maps.Keys(objects)) {
		putObject(t, put, name, objects[name])
	}
	after := time.Now().Add(2 * time.Second)

	objs := listObjects(t, o, "generations/")
	want := []string{
		"generations/0123456789abcdef/snapshots/00000000.snapshot.lz4",
		"generations/0123456789abcdef/wal/00000000_00000000.wal.lz4",
		"generations/fedcba9876543210/wal/00000001_00001038.wal.lz4",
	}
	if got := names(objs); !slices.Equal(got, want) {
		t.Fatalf("generations/ lists %q; want %q", got, want)
	}
	for _, obj := range objs {
		if obj.Size != int64(len(objects[obj.Name])) {
			t.Fatalf("%s is listed with %d bytes; it holds %d", obj.Name, obj.Size, len(objects[obj.Name]))
		}
		if obj.ModTime.Before(before) || obj.ModTime.After(after) || obj.ModTime.Location() != time.UTC {
			t.Fatalf("%s is listed as written at %s; it was written between %s and %s (and times are in UTC)", obj.Name, obj.ModTime, before, after)
		}
	}
	if got := names(listObjects(t, o, "generations/0123456789abcdef/wal/")); !slices.Equal(got, want[1:2]) {
		t.Fatalf("one generation's wal/ lists %q; want %q", got, want[1:2])
	}
	if got, want := names(listObjects(t, o, "")), slices.Sorted(maps.Keys(objects)); !slices.Equal(got, want) {
		t.Fatalf("the whole replica lists %q; want %q", got, want)
	}
}

func testObjectsOpen(t *testing.T, _ storage.Client, o storage.Objects, put Put) {
	small := []byte("a WAL segment")
	large := make([]byte, 3<<20+17)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range large {
		large[i] = byte(rng.Uint32())
	}
	putObject(t, put, "generations/0123456789abcdef/wal/00000000_00000000.wal.lz4", small)
	putObject(t, put, "generations/0123456789abcdef/snapshots/00000000.snapshot.lz4", large)
	putObject(t, put, "generations/0123456789abcdef/wal/00000000_0000000d.wal.lz4", nil)
	if got := readObject(t, o, "generations/0123456789abcdef/wal/00000000_00000000.wal.lz4"); !bytes.Equal(got, small) {
		t.Fatalf("read back %q; want %q", got, small)
	}
	if got := readObject(t, o, "generations/0123456789abcdef/snapshots/00000000.snapshot.lz4"); !bytes.Equal(got, large) {
		t.Fatalf("a %d-byte object read back as %d bytes that differ", len(large), len(got))
	}
	if got := readObject(t, o, "generations/0123456789abcdef/wal/00000000_0000000d.wal.lz4"); len(got) != 0 {
		t.Fatalf("an empty object read back as %d bytes", len(got))
	}
	_, err := o.OpenObject(context.Background(), "generations/0123456789abcdef/wal/00000001_00000000.wal.lz4")
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("opening a missing object: %v; want an error wrapping storage.ErrNotFound", err)
	}
}

// testObjectsLTX: the client's own files are objects under the same path,
// so a name ListObjects gives is the one the client writes to.
func testObjectsLTX(t *testing.T, c storage.Client, o storage.Objects, _ Put) {
	b0, b9 := File(t, 1, 1, 2, 1), File(t, 1, 3, 2, 2)
	write(t, c, 0, 1, 1, b0, time.Now())
	write(t, c, storage.SnapshotLevel, 1, 3, b9, time.Now())
	found := map[string][]byte{}
	for _, obj := range listObjects(t, o, "") {
		base := path.Base(obj.Name)
		switch base {
		case storage.FileName(1, 1), storage.FileName(1, 3):
			found[base] = readObject(t, o, obj.Name)
		}
	}
	if !bytes.Equal(found[storage.FileName(1, 1)], b0) || !bytes.Equal(found[storage.FileName(1, 3)], b9) {
		t.Fatalf("the client's LTX files are not among the objects it lists, or read back differently: %q", names(listObjects(t, o, "")))
	}
}

func testObjectsNames(t *testing.T, _ storage.Client, o storage.Objects, put Put) {
	putObject(t, put, "generations/a/b", []byte("x"))
	ctx := context.Background()
	for _, dir := range []string{"generations", "/generations/", "../", "generations/../", "./generations/", "a//", "\\x/"} {
		if _, err := o.ListObjects(ctx, dir); err == nil {
			t.Errorf("listing %q succeeded; want an error", dir)
		}
	}
	for _, name := range []string{"", "/generations/a/b", "generations/../generations/a/b", "generations//a/b", "generations/./a/b", "../b", "generations/a/"} {
		if rc, err := o.OpenObject(ctx, name); err == nil {
			rc.Close()
			t.Errorf("opening %q succeeded; want an error", name)
		}
	}
}

func testObjectsMany(t *testing.T, _ storage.Client, o storage.Objects, put Put) {
	// More than one page of an S3 or GCS listing (1000).
	const n = 1001
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := put(fmt.Sprintf("generations/0123456789abcdef/wal/%08x_00000000.wal.lz4", i), []byte{byte(i)}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	objs := listObjects(t, o, "generations/")
	if len(objs) != n {
		t.Fatalf("listed %d objects; want %d", len(objs), n)
	}
	if !slices.IsSortedFunc(objs, func(a, b storage.ObjectInfo) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatal("the listing is not sorted by name")
	}
}

func testObjectsCancelled(t *testing.T, _ storage.Client, o storage.Objects, put Put) {
	putObject(t, put, "generations/a/b", []byte("x"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := o.ListObjects(ctx, "generations/"); err == nil {
		t.Fatal("a listing with a cancelled context succeeded")
	}
	if rc, err := o.OpenObject(ctx, "generations/a/b"); err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
		if err == nil {
			t.Fatal("a read with a cancelled context succeeded")
		}
	}
}
