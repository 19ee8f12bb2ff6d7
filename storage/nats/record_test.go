package nats_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
)

// TestRecordObjects checks that a record is an object of the bucket at
// <path>/<name>, which the object store library reads, that its version is
// its metadata's stream sequence, that a replace leaves no chunks of the
// previous version, and that two paths of one bucket have records of their
// own.
func TestRecordObjects(t *testing.T) {
	srv := testserver.NATS(t)
	ctx := context.Background()
	a := open(t, storage.Spec{URL: natsURL(srv, true, "records/db-a")})
	b := open(t, storage.Spec{URL: natsURL(srv, true, "records/db-b")})

	va, err := a.WriteRecord(ctx, "owner.json", []byte(`{"owner":"a"}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.ReadRecord(ctx, "owner.json"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("another path of the bucket sees the record: %v", err)
	}
	if _, err := b.WriteRecord(ctx, "owner.json", []byte(`{"owner":"b"}`), ""); err != nil {
		t.Fatalf("another path of the bucket cannot create its own record: %v", err)
	}

	s := rawStream(t, srv, "records")
	if m := metaMessage(t, s, "records", "db-a/owner.json"); strconv.FormatUint(m.Sequence, 10) != va {
		t.Fatalf("version %s; the metadata message is sequence %d", va, m.Sequence)
	}
	obs := rawStore(t, srv, "records")
	get := func(name string) []byte {
		t.Helper()
		res, err := obs.Get(ctx, name)
		if err != nil {
			t.Fatalf("get %s with the object store library: %v", name, err)
		}
		defer res.Close()
		data, err := io.ReadAll(res) // checks the digest at the end
		if err != nil {
			t.Fatalf("read %s with the object store library: %v", name, err)
		}
		return data
	}
	if got := get("db-a/owner.json"); string(got) != `{"owner":"a"}` {
		t.Fatalf("the library reads %q", got)
	}

	if _, err := a.WriteRecord(ctx, "owner.json", []byte(`{"owner":"a2"}`), va); err != nil {
		t.Fatal(err)
	}
	if got := get("db-a/owner.json"); string(got) != `{"owner":"a2"}` {
		t.Fatalf("after a replace the library reads %q", got)
	}
	if n := len(chunkSubjects(t, s, "records")); n != 2 {
		t.Fatalf("%d chunk subjects for two records: a replace left chunks behind, or a write stored none", n)
	}
}

// TestRecordForeign checks records written or deleted with the object store
// library: one in several chunks reads back, and one deleted (which leaves
// a deletion marker) is missing and can be created again.
func TestRecordForeign(t *testing.T) {
	srv := testserver.NATS(t)
	ctx := context.Background()
	c := open(t, storage.Spec{URL: natsURL(srv, true, "foreign/db")})
	if _, err := c.WriteRecord(ctx, "owner.json", []byte(`{}`), ""); err != nil {
		t.Fatal(err) // creates the bucket
	}
	obs := rawStore(t, srv, "foreign")

	data := bytes.Repeat([]byte("0123456789"), 1000)
	meta := jetstream.ObjectMeta{Name: "db/big.json", Opts: &jetstream.ObjectMetaOptions{ChunkSize: 4096}}
	if _, err := obs.Put(ctx, meta, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	got, v, err := c.ReadRecord(ctx, "big.json")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read a record of %d bytes in 3 chunks: %d bytes, %v", len(data), len(got), err)
	}
	if _, err := c.WriteRecord(ctx, "big.json", []byte(`{"small":true}`), v); err != nil {
		t.Fatalf("replace a record the library wrote: %v", err)
	}

	if err := obs.Delete(ctx, "db/owner.json"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadRecord(ctx, "owner.json"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("reading a deleted record: %v; want storage.ErrNotFound", err)
	}
	if _, err := c.WriteRecord(ctx, "owner.json", []byte(`{}`), "1"); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("replacing a deleted record: %v; want storage.ErrConflict", err)
	}
	if _, err := c.WriteRecord(ctx, "owner.json", []byte(`{"again":true}`), ""); err != nil {
		t.Fatalf("creating a deleted record again: %v", err)
	}
	if got, _, err := c.ReadRecord(ctx, "owner.json"); err != nil || string(got) != `{"again":true}` {
		t.Fatalf("read %q, %v", got, err)
	}
}
