package nats_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/nats"
	"github.com/walship/walship/storage/storagetest"
)

// natsURL returns nats://[user:password@]host/bucket[/path].
func natsURL(srv *testserver.NATSServer, withAuth bool, bucketAndPath string) *url.URL {
	u := &url.URL{Scheme: "nats", Host: srv.Host, Path: "/" + bucketAndPath}
	if withAuth {
		u.User = url.UserPassword(srv.User, srv.Password)
	}
	return u
}

// rawStore opens a bucket with the plain JetStream API.
func rawStore(t *testing.T, srv *testserver.NATSServer, bucket string) jetstream.ObjectStore {
	t.Helper()
	js, err := jetstream.New(srv.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	obs, err := js.ObjectStore(context.Background(), bucket)
	if err != nil {
		t.Fatalf("open bucket %s with the JetStream API: %v", bucket, err)
	}
	return obs
}

func write(t *testing.T, c storage.Client, level int, minTXID, maxTXID ltx.TXID, b []byte, at time.Time) *ltx.FileInfo {
	t.Helper()
	info, err := c.WriteLTXFile(context.Background(), level, minTXID, maxTXID, bytes.NewReader(b), at)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	return info
}

// describe formats a listing for messages.
func describe(files []*ltx.FileInfo) string {
	var s []string
	for _, f := range files {
		s = append(s, fmt.Sprintf("%s (%d bytes, %s)", storage.Describe(f.Level, f.MinTXID, f.MaxTXID), f.Size, f.CreatedAt.Format(time.RFC3339Nano)))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func list(t *testing.T, c storage.Client, level int) []*ltx.FileInfo {
	t.Helper()
	files, err := c.LTXFiles(context.Background(), level)
	if err != nil {
		t.Fatalf("list level %d: %v", level, err)
	}
	return files
}

// TestLayout checks, through the JetStream API, the object names and the
// timestamp header that Litestream expects, and that the bucket was created
// with file storage.
func TestLayout(t *testing.T) {
	srv := testserver.NATS(t)
	c := open(t, storage.Spec{URL: natsURL(srv, true, "layout/dbs/app")})

	at := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	l0 := storagetest.File(t, 1, 2, 2, 1)
	snap := storagetest.File(t, 1, 0x1f, 3, 2)
	info := write(t, c, 0, 1, 2, l0, at)
	if info.Size != int64(len(l0)) || !info.CreatedAt.Equal(at) {
		t.Fatalf("write returned %+v", info)
	}
	write(t, c, storage.SnapshotLevel, 1, 0x1f, snap, at.Add(time.Second))

	obs := rawStore(t, srv, "layout")
	objs, err := obs.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Name)
	}
	slices.Sort(names)
	want := []string{
		"dbs/app/ltx/0/0000000000000001-0000000000000002.ltx",
		"dbs/app/ltx/9/0000000000000001-000000000000001f.ltx",
	}
	if !slices.Equal(names, want) {
		t.Fatalf("objects in the bucket: %q; want %q", names, want)
	}

	oi, err := obs.GetInfo(context.Background(), want[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := oi.Headers.Get("Litestream-Timestamp"); got != "2026-01-02T03:04:05.678Z" {
		t.Fatalf("Litestream-Timestamp header %q; want 2026-01-02T03:04:05.678Z (headers %v)", got, oi.Headers)
	}
	if oi.Size != uint64(len(l0)) {
		t.Fatalf("object size %d; want %d", oi.Size, len(l0))
	}
	b, err := obs.GetBytes(context.Background(), want[1])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, snap) {
		t.Fatal("the snapshot read with the JetStream API differs from what was written")
	}

	st, err := obs.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Storage() != jetstream.FileStorage || st.TTL() != 0 {
		t.Fatalf("bucket created with storage %v, TTL %v; want file storage and no TTL", st.Storage(), st.TTL())
	}
}

// TestReadsForeignObjects lists and reads objects written with the plain
// JetStream API the way Litestream writes them, and ignores what is not an
// LTX file of the level.
func TestReadsForeignObjects(t *testing.T) {
	srv := testserver.NATS(t)
	js, err := jetstream.New(srv.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "litestream", Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	put := func(name string, hdr natsgo.Header, b []byte) {
		t.Helper()
		if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name, Headers: hdr}, bytes.NewReader(b)); err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
	}
	// Litestream: time.UnixMilli(ts).UTC().Format(time.RFC3339Nano).
	at := time.UnixMilli(1767323045123).UTC()
	f1 := storagetest.File(t, 1, 5, 2, 1)
	put("ltx/1/0000000000000001-0000000000000005.ltx", natsgo.Header{"Litestream-Timestamp": {at.Format(time.RFC3339Nano)}}, f1)
	put("ltx/1/0000000000000006-0000000000000007.ltx", natsgo.Header{"litestream-timestamp": {at.Add(time.Hour).Format(time.RFC3339Nano)}}, storagetest.File(t, 6, 7, 1, 2))
	put("ltx/1/0000000000000008-0000000000000008.ltx", nil, storagetest.File(t, 8, 8, 1, 3))
	put("ltx/1/notes.txt", nil, []byte("not an LTX file"))
	put("ltx/1/sub/0000000000000009-0000000000000009.ltx", nil, []byte("deeper"))
	put("ltx/1/000000000000000A-000000000000000A.ltx", nil, []byte("upper case"))
	put("ltx/10/0000000000000001-0000000000000001.ltx", nil, []byte("level 10"))
	put("ltx/1/0000000000000010-0000000000000010.ltx", nil, []byte("deleted"))
	if err := obs.Delete(ctx, "ltx/1/0000000000000010-0000000000000010.ltx"); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Minute)

	c := open(t, storage.Spec{URL: natsURL(srv, true, "litestream")})
	files := list(t, c, 1)
	if len(files) != 3 {
		t.Fatalf("listed %d files: %s; want the 3 LTX files", len(files), describe(files))
	}
	if f := files[0]; f.MinTXID != 1 || f.MaxTXID != 5 || f.Size != int64(len(f1)) || !f.CreatedAt.Equal(at) {
		t.Fatalf("file 0 is %+v; want 1-5, %d bytes, created %s", f, len(f1), at)
	}
	if f := files[1]; f.MinTXID != 6 || !f.CreatedAt.Equal(at.Add(time.Hour)) {
		t.Fatalf("file 1 is %+v; want created %s from the lower-case header", f, at.Add(time.Hour))
	}
	if f := files[2]; f.MinTXID != 8 || f.CreatedAt.Before(before) || f.CreatedAt.Location() != time.UTC {
		t.Fatalf("file 2 is %+v; want its modification time in UTC, as it has no header", f)
	}
	if got := list(t, c, 0); len(got) != 0 {
		t.Fatalf("level 0 lists %s", describe(got))
	}
	rc, err := c.OpenLTXFile(ctx, 1, 1, 5, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, err := io.ReadAll(rc); err != nil || !bytes.Equal(b, f1) {
		t.Fatalf("read %d bytes (%v) that differ from Litestream's file", len(b), err)
	}
	_, err = c.OpenLTXFile(ctx, 1, 0x10, 0x10, 0, 0)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("opening a deleted object: %v; want ErrNotFound", err)
	}
}

// TestMissingBucket checks that reads, listings and deletes of a bucket that
// does not exist find nothing and do not create it; the first write does.
func TestMissingBucket(t *testing.T) {
	srv := testserver.NATS(t)
	c := open(t, storage.Spec{URL: natsURL(srv, true, "later")})
	ctx := context.Background()
	if files := list(t, c, 0); len(files) != 0 {
		t.Fatalf("listed %s", describe(files))
	}
	_, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("open: %v; want ErrNotFound", err)
	}
	for _, want := range []string{"nats://" + srv.Host + "/later", "level 0 file 0000000000000001-0000000000000001.ltx"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %q", err, want)
		}
	}
	if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	js, err := jetstream.New(srv.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.ObjectStore(ctx, "later"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("reads created the bucket (lookup: %v)", err)
	}

	write(t, c, 0, 1, 1, storagetest.File(t, 1, 1, 1, 1), time.Now())
	if _, err := js.ObjectStore(ctx, "later"); err != nil {
		t.Fatalf("the first write did not create the bucket: %v", err)
	}

	// A bucket deleted behind the client's back is created again.
	if err := js.DeleteObjectStore(ctx, "later"); err != nil {
		t.Fatal(err)
	}
	if files := list(t, c, 0); len(files) != 0 {
		t.Fatalf("after the bucket was deleted: %s", describe(files))
	}
	write(t, c, 0, 2, 2, storagetest.File(t, 2, 2, 1, 2), time.Now())
	if files := list(t, c, 0); len(files) != 1 || files[0].MinTXID != 2 {
		t.Fatalf("after writing to a re-created bucket: %s", describe(files))
	}
}

// TestFullBucket fills a bucket the operator created with a size limit: the
// write fails, and leaves no file behind, even though the server may have
// accepted the object's metadata after refusing one of its chunks.
func TestFullBucket(t *testing.T) {
	srv := testserver.NATS(t)
	js, err := jetstream.New(srv.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "small", Storage: jetstream.FileStorage, MaxBytes: 300 << 10}); err != nil {
		t.Fatal(err)
	}
	c := open(t, storage.Spec{URL: natsURL(srv, true, "small")})
	big := storagetest.File(t, 1, 1, 250, 1)                                                    // ~1 MB
	for _, r := range []io.Reader{bytes.NewReader(big), io.MultiReader(bytes.NewReader(big))} { // seekable, then not
		_, err := c.WriteLTXFile(ctx, 0, 1, 1, r, time.Now())
		if err == nil {
			t.Fatal("a write larger than the bucket succeeded")
		}
		if !strings.Contains(err.Error(), "nats://"+srv.Host+"/small") || !strings.Contains(err.Error(), "level 0 file 0000000000000001-0000000000000001.ltx") {
			t.Fatalf("the error does not name the destination and the file: %v", err)
		}
		if files := list(t, c, 0); len(files) != 0 {
			t.Fatalf("a failed write left %s", describe(files))
		}
		if _, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("a failed write left an object that opens: %v", err)
		}
		if chunks := chunkSubjects(t, rawStream(t, srv, "small"), "small"); len(chunks) != 0 {
			t.Fatalf("a failed write left chunks in the bucket: %v", chunks)
		}
	}
	// A file that fits is still written.
	small := storagetest.File(t, 2, 2, 2, 2)
	write(t, c, 0, 2, 2, small, time.Now())
	if files := list(t, c, 0); len(files) != 1 || files[0].Size != int64(len(small)) {
		t.Fatalf("after a write that fits: %s", describe(files))
	}
}

// TestAuth checks each way to authenticate against the server, and that a
// refused password or token gives a clear error that does not show it.
func TestAuth(t *testing.T) {
	srv := testserver.NATS(t)
	ctx := context.Background()
	b := storagetest.File(t, 1, 1, 1, 1)

	t.Run("UserPasswordKeys", func(t *testing.T) {
		c := open(t, storage.Spec{URL: natsURL(srv, false, "auth"), Keys: map[string]string{"user": srv.User, "password": srv.Password}})
		write(t, c, 0, 1, 1, b, time.Now())
	})
	t.Run("NKeySeedFile", func(t *testing.T) {
		c := open(t, storage.Spec{URL: natsURL(srv, false, "auth"), Keys: map[string]string{"nkey": srv.NKeySeedFile}})
		if files := list(t, c, 0); len(files) != 1 {
			t.Fatalf("listed %s", describe(files))
		}
	})

	const wrong = "Wrong-Passw0rd-7f3a"
	for name, spec := range map[string]storage.Spec{
		"WrongPasswordInURL": {URL: &url.URL{Scheme: "nats", User: url.UserPassword(srv.User, wrong), Host: srv.Host, Path: "/auth"}},
		"WrongPasswordKey":   {URL: natsURL(srv, false, "auth"), Keys: map[string]string{"username": srv.User, "password": wrong}},
		"NoCredentials":      {URL: natsURL(srv, false, "auth")},
	} {
		t.Run(name, func(t *testing.T) {
			c := open(t, spec)
			if strings.Contains(c.String(), wrong) {
				t.Fatalf("String() shows the password: %s", c)
			}
			_, errList := c.LTXFiles(ctx, 0)
			_, errWrite := c.WriteLTXFile(ctx, 0, 2, 2, bytes.NewReader(b), time.Now())
			_, errOpen := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
			errDelete := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}})
			for _, err := range []error{errList, errWrite, errOpen, errDelete} {
				if err == nil {
					t.Fatal("a request with bad credentials succeeded")
				}
				msg := strings.ToLower(err.Error())
				if strings.Contains(msg, strings.ToLower(wrong)) || strings.Contains(msg, strings.ToLower(srv.Password)) {
					t.Fatalf("the error shows a password: %s", msg)
				}
				for _, want := range []string{"nats://" + srv.Host + "/auth", "authorization violation", "check the username and password"} {
					if !strings.Contains(msg, want) {
						t.Fatalf("error %q does not contain %q", msg, want)
					}
				}
				if errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("bad credentials reported as a missing file: %v", err)
				}
			}
			if !strings.Contains(errWrite.Error(), "write level 0 file 0000000000000002-0000000000000002.ltx") {
				t.Fatalf("the write error does not name the file: %v", errWrite)
			}
		})
	}

	t.Run("Token", func(t *testing.T) {
		tsrv := testserver.NATSWithToken(t)
		good := open(t, storage.Spec{URL: &url.URL{Scheme: "nats", User: url.User(tsrv.Token), Host: tsrv.Host, Path: "/tok"}})
		write(t, good, 0, 1, 1, b, time.Now())
		if strings.Contains(good.String(), tsrv.Token) {
			t.Fatalf("String() shows the token: %s", good)
		}

		const wrongToken = "wrong-token-51c2"
		bad := open(t, storage.Spec{URL: natsURL(tsrv, false, "tok"), Keys: map[string]string{"token": wrongToken}})
		_, err := bad.LTXFiles(ctx, 0)
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			t.Fatalf("a wrong token: %v", err)
		}
		if strings.Contains(err.Error(), wrongToken) || strings.Contains(err.Error(), tsrv.Token) {
			t.Fatalf("the error shows a token: %v", err)
		}
	})
}

// TestServerDown checks that Open does not wait for a server, and that
// requests to a server that is not there fail by their deadline with an
// error naming the destination.
func TestServerDown(t *testing.T) {
	port := testserver.FreePort(t)
	const secret = "down-secret-4411"
	u := &url.URL{Scheme: "nats", User: url.UserPassword("u", secret), Host: testserver.Addr(port), Path: "/b"}
	c := open(t, storage.Spec{URL: u})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := c.LTXFiles(ctx, 0)
	if err == nil {
		t.Fatal("listing with no server succeeded")
	}
	if !strings.Contains(err.Error(), "nats://"+testserver.Addr(port)+"/b") || strings.Contains(err.Error(), secret) {
		t.Fatalf("error %q must name the destination and not the password", err)
	}
	_, err = c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader([]byte("x")), time.Now())
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("writing with no server: %v", err)
	}
}

// TestRestart checks that the client reconnects to a server that restarted
// and finds the files it wrote before (file storage).
func TestRestart(t *testing.T) {
	srv := testserver.NATS(t)
	c := open(t, storage.Spec{URL: natsURL(srv, true, "restart")})
	b1 := storagetest.File(t, 1, 1, 2, 1)
	write(t, c, 0, 1, 1, b1, time.Now())

	srv.Process.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err := c.LTXFiles(ctx, 0)
	cancel()
	if err == nil {
		t.Fatal("listing while the server is down succeeded")
	}
	if !strings.Contains(err.Error(), "connection to the NATS server is down") {
		t.Fatalf("listing while the server is down: %v; want it to say that the connection is down", err)
	}

	srv.Restart(t)
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b2 := storagetest.File(t, 2, 2, 2, 2)
	if _, err := c.WriteLTXFile(ctx, 0, 2, 2, bytes.NewReader(b2), time.Now()); err != nil {
		t.Fatalf("write after the restart: %v", err)
	}
	files, err := c.LTXFiles(ctx, 0)
	if err != nil || len(files) != 2 {
		t.Fatalf("after the restart: %s, %v", describe(files), err)
	}
	rc, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, b1) {
		t.Fatalf("the file written before the restart reads back as %d bytes (%v)", len(got), err)
	}
}

// TestTransfers checks that a download holds its transfer slot until it is
// closed, and an upload until it ends.
func TestTransfers(t *testing.T) {
	srv := testserver.NATS(t)
	tr := storage.NewTransfers(1, 0)
	c := open(t, storage.Spec{URL: natsURL(srv, true, "transfers"), Transfers: tr})
	b := storagetest.File(t, 1, 1, 2, 1)
	write(t, c, 0, 1, 1, b, time.Now())

	rc, err := c.OpenLTXFile(context.Background(), 0, 1, 1, 10, 20)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err = c.WriteLTXFile(ctx, 0, 2, 2, bytes.NewReader(b), time.Now())
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a write while the only slot is held by an open download: %v; want it to wait for the slot", err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, b[10:30]) {
		t.Fatalf("ranged read: %d bytes, %v", len(got), err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	write(t, c, 0, 2, 2, b, time.Now())
}

// TestClose checks that a closed client refuses requests.
func TestClose(t *testing.T) {
	srv := testserver.NATS(t)
	c, err := nats.Open(context.Background(), storage.Spec{URL: natsURL(srv, true, "closed")})
	if err != nil {
		t.Fatal(err)
	}
	list(t, c, 0)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LTXFiles(context.Background(), 0); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("listing after Close: %v", err)
	}
}

// TestReadCancelled checks that a download ends when the context it was
// opened with ends, with an error naming the destination and the file.
func TestReadCancelled(t *testing.T) {
	srv := testserver.NATS(t)
	c := open(t, storage.Spec{URL: natsURL(srv, true, "cancel")})
	b := storagetest.File(t, 1, 1, 40, 1)
	write(t, c, 0, 1, 1, b, time.Now())

	ctx, cancel := context.WithCancel(context.Background())
	rc, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.ReadAll(rc)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("reading after the context ended: %v; want context.Canceled", err)
	}
	for _, want := range []string{"nats://" + srv.Host + "/cancel", "read level 0 file 0000000000000001-0000000000000001.ltx"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not contain %q", err, want)
		}
	}
}
