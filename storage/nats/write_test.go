package nats_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/storagetest"
)

// rawStream opens a bucket's stream with the plain JetStream API.
func rawStream(t *testing.T, srv *testserver.NATSServer, bucket string) jetstream.Stream {
	t.Helper()
	js, err := jetstream.New(srv.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), "OBJ_"+bucket)
	if err != nil {
		t.Fatalf("open the stream of bucket %s: %v", bucket, err)
	}
	return s
}

// chunkSubjects returns the number of messages on each chunk subject of a
// bucket ($O.<bucket>.C.<nuid>).
func chunkSubjects(t *testing.T, s jetstream.Stream, bucket string) map[string]uint64 {
	t.Helper()
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter("$O."+bucket+".C.>"))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Subjects == nil {
		return map[string]uint64{}
	}
	return info.State.Subjects
}

// metaMessage returns the raw metadata message of an object.
func metaMessage(t *testing.T, s jetstream.Stream, bucket, name string) *jetstream.RawStreamMsg {
	t.Helper()
	m, err := s.GetLastMsgForSubject(context.Background(), "$O."+bucket+".M."+base64.URLEncoding.EncodeToString([]byte(name)))
	if err != nil {
		t.Fatalf("metadata of %s: %v", name, err)
	}
	return m
}

// TestLostChunks writes through a user whose chunks the server refuses while
// it accepts everything else, object metadata included: what a write sees
// when its chunks are lost on the way. The write must fail without the
// object ever being replaced, even for a moment, by one whose chunks are
// missing (a watcher on another connection checks it throughout: a process
// that died at that moment would leave it so). The previous version stays
// whole, and a new file stays absent.
func TestLostChunks(t *testing.T) {
	srv := testserver.NATS(t)
	good := open(t, storage.Spec{URL: natsURL(srv, true, "lost")})
	bad := open(t, storage.Spec{URL: natsURL(srv, false, "lost"), Keys: map[string]string{
		"username": srv.NoChunksUser, "password": srv.NoChunksPassword,
	}})
	v1 := storagetest.File(t, 1, 1, 80, 1) // 3 chunks
	write(t, good, 0, 1, 1, v1, time.Now())
	obs := rawStore(t, srv, "lost")
	stream := rawStream(t, srv, "lost")
	ctx := context.Background()
	replaced := good.ObjectName(0, 1, 1)
	info1, err := obs.GetInfo(ctx, replaced)
	if err != nil {
		t.Fatal(err)
	}
	fresh := good.ObjectName(0, 2, 2)

	for _, tc := range []struct {
		name     string
		min      ltx.TXID
		object   string
		wantNUID string // "" for absent
	}{
		{"ReplaceFile", 1, replaced, info1.NUID},
		{"NewFile", 2, fresh, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Watch the object while the write runs.
			var (
				mu   sync.Mutex
				seen []string
			)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					info, err := obs.GetInfo(ctx, tc.object)
					var got string
					switch {
					case err == nil:
						got = info.NUID
					case errors.Is(err, jetstream.ErrObjectNotFound):
					default:
						got = "error: " + err.Error()
					}
					if got != tc.wantNUID {
						mu.Lock()
						if !slices.Contains(seen, got) {
							seen = append(seen, got)
						}
						mu.Unlock()
					}
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			}()

			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			v2 := storagetest.File(t, tc.min, tc.min, 80, 2)
			_, err := bad.WriteLTXFile(wctx, 0, tc.min, tc.min, bytes.NewReader(v2), time.Now())
			close(stop)
			wg.Wait()
			if err == nil {
				t.Fatal("a write whose chunks the server refused succeeded")
			}
			if !strings.Contains(err.Error(), "nats://"+srv.Host+"/lost") || !strings.Contains(err.Error(), storage.Describe(0, tc.min, tc.min)) {
				t.Fatalf("the error does not name the destination and the file: %v", err)
			}
			if len(seen) > 0 {
				t.Fatalf("while the write ran, the object %s was %q; want it to stay %q", tc.object, seen, tc.wantNUID)
			}
		})
	}

	// The previous version is intact, and reads back through the library
	// (digest check) and the client; the new file does not exist.
	if b, err := obs.GetBytes(ctx, replaced); err != nil || !bytes.Equal(b, v1) {
		t.Fatalf("the previous version reads back as %d bytes (%v); want the %d bytes written", len(b), err, len(v1))
	}
	if files := list(t, good, 0); len(files) != 1 || files[0].MinTXID != 1 || files[0].Size != int64(len(v1)) {
		t.Fatalf("after the failed writes: %s; want only the previous version of file 1-1", describe(files))
	}
	if _, err := good.OpenLTXFile(ctx, 0, 2, 2, 0, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the new file that failed to write opens: %v", err)
	}
	want := map[string]uint64{"$O.lost.C." + info1.NUID: uint64(info1.Chunks)}
	if got := chunkSubjects(t, stream, "lost"); !maps.Equal(got, want) {
		t.Fatalf("chunks in the bucket: %v; want only those of the previous version, %v", got, want)
	}
}

// TestWireFormat checks that an object the client writes is in the object
// store's format, as the library's Put writes it (which Litestream reads):
// the same metadata fields, chunking, digest and rollup header; that the
// library reads it back; that replacing it removes the old version's
// chunks; and that deleting it leaves nothing behind, not even a deletion
// marker.
func TestWireFormat(t *testing.T) {
	srv := testserver.NATS(t)
	c := open(t, storage.Spec{URL: natsURL(srv, true, "wire")})
	ctx := context.Background()
	at := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	data := storagetest.File(t, 1, 9, 80, 1) // 3 chunks
	if len(data) <= 2*128<<10 || len(data) > 3*128<<10 {
		t.Fatalf("test file of %d bytes; want 3 chunks", len(data))
	}
	write(t, c, 1, 1, 9, data, at)
	name := c.ObjectName(1, 1, 9)

	obs := rawStore(t, srv, "wire")
	stream := rawStream(t, srv, "wire")
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: "library", Headers: natsgo.Header{"Litestream-Timestamp": {"x"}}}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}

	info, err := obs.GetInfo(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if info.Chunks != 3 || info.Size != uint64(len(data)) || info.Digest != "SHA-256="+base64.URLEncoding.EncodeToString(sum[:]) ||
		info.Opts == nil || info.Opts.ChunkSize != 128<<10 || info.Bucket != "wire" || info.Deleted {
		t.Fatalf("object info %+v (options %+v); want 3 chunks of 128 KiB, %d bytes, the SHA-256 digest", info, info.Opts, len(data))
	}
	if got := info.Headers.Get("Litestream-Timestamp"); got != "2026-03-04T05:06:07.89Z" {
		t.Fatalf("Litestream-Timestamp %q", got)
	}
	if b, err := obs.GetBytes(ctx, name); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("the library reads %d bytes (%v); want the %d written", len(b), err, len(data))
	}

	// The metadata message has the fields and header of the library's.
	ours, theirs := metaMessage(t, stream, "wire", name), metaMessage(t, stream, "wire", "library")
	for _, m := range []*jetstream.RawStreamMsg{ours, theirs} {
		if got := m.Header.Get("Nats-Rollup"); got != "sub" {
			t.Fatalf("metadata message on %s has Nats-Rollup %q; want sub", m.Subject, got)
		}
	}
	var a, b map[string]any
	if err := json.Unmarshal(ours.Data, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(theirs.Data, &b); err != nil {
		t.Fatal(err)
	}
	if ka, kb := slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b)); !slices.Equal(ka, kb) {
		t.Fatalf("metadata fields %q; the library writes %q", ka, kb)
	}
	for _, k := range []string{"options", "mtime", "digest", "size", "chunks"} {
		ja, _ := json.Marshal(a[k])
		jb, _ := json.Marshal(b[k])
		if !bytes.Equal(ja, jb) {
			t.Fatalf("metadata field %s is %s; the library writes %s for the same data", k, ja, jb)
		}
	}

	// Replacing the file removes the previous version's chunks.
	data2 := storagetest.File(t, 1, 9, 40, 2)
	write(t, c, 1, 1, 9, data2, at)
	info2, err := obs.GetInfo(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	chunks := chunkSubjects(t, stream, "wire")
	if _, ok := chunks["$O.wire.C."+info.NUID]; ok || chunks["$O.wire.C."+info2.NUID] != uint64(info2.Chunks) || info2.NUID == info.NUID {
		t.Fatalf("after replacing the file, the chunks are %v; want the %d of the new version (%s) and none of the old (%s)",
			chunks, info2.Chunks, info2.NUID, info.NUID)
	}
	rc, err := c.OpenLTXFile(ctx, 1, 1, 9, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data2) {
		t.Fatalf("the replaced file reads back as %d bytes (%v)", len(got), err)
	}

	// Deleting leaves neither metadata nor chunks.
	if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{{Level: 1, MinTXID: 1, MaxTXID: 9}}); err != nil {
		t.Fatal(err)
	}
	if _, err := obs.GetInfo(ctx, name, jetstream.GetObjectInfoShowDeleted()); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("after the delete, the object's metadata (or a deletion marker) is still there: %v", err)
	}
	if _, ok := chunkSubjects(t, stream, "wire")["$O.wire.C."+info2.NUID]; ok {
		t.Fatal("the deleted file's chunks are still there")
	}
	if files := list(t, c, 1); len(files) != 0 {
		t.Fatalf("after the delete: %s", describe(files))
	}
	if b, err := obs.GetBytes(ctx, "library"); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("the other object was damaged: %d bytes, %v", len(b), err)
	}
}

// TestRangedReads checks that the client tells restore that it has no
// ranged reads, so that files are fetched in one stream.
func TestRangedReads(t *testing.T) {
	var c storage.Client = open(t, storage.Spec{URL: natsURL(&testserver.NATSServer{Host: "127.0.0.1:4222"}, false, "b")})
	rr, ok := c.(storage.RangeReader)
	if !ok {
		t.Fatal("the client does not implement storage.RangeReader")
	}
	if rr.RangedReads() {
		t.Fatal("RangedReads() = true; the object store has no ranged reads")
	}
}
