package gcs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gcs "cloud.google.com/go/storage"
	"github.com/superfly/ltx"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
	walgcs "github.com/walship/walship/storage/gcs"
	"github.com/walship/walship/storage/storagetest"
)

// rawClient is an SDK client on srv, to look at what the backend stored.
func rawClient(t testing.TB, srv *testserver.GCSServer) *gcs.Client {
	t.Helper()
	c, err := gcs.NewClient(context.Background(), option.WithEndpoint(srv.Endpoint+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawObjects lists every object of a bucket with its attributes, by name.
func rawObjects(t testing.TB, c *gcs.Client, bucket string) map[string]*gcs.ObjectAttrs {
	t.Helper()
	objs := map[string]*gcs.ObjectAttrs{}
	it := c.Bucket(bucket).Objects(context.Background(), nil)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return objs
		} else if err != nil {
			t.Fatalf("list bucket %s: %v", bucket, err)
		}
		objs[a.Name] = a
	}
}

func rawPut(t testing.TB, c *gcs.Client, bucket, name string, b []byte, metadata map[string]string) {
	t.Helper()
	w := c.Bucket(bucket).Object(name).NewWriter(context.Background())
	w.Metadata = metadata
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

func write(t testing.TB, c storage.Client, level int, min, max ltx.TXID, b []byte, at time.Time) *ltx.FileInfo {
	t.Helper()
	info, err := c.WriteLTXFile(context.Background(), level, min, max, bytes.NewReader(b), at)
	if err != nil {
		t.Fatalf("write %s: %v", storage.Describe(level, min, max), err)
	}
	return info
}

func readAll(t testing.TB, c storage.Client, level int, min, max ltx.TXID) []byte {
	t.Helper()
	rc, err := c.OpenLTXFile(context.Background(), level, min, max, 0, 0)
	if err != nil {
		t.Fatalf("open %s: %v", storage.Describe(level, min, max), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func list(t testing.TB, c storage.Client, level int) []*ltx.FileInfo {
	t.Helper()
	files, err := c.LTXFiles(context.Background(), level)
	if err != nil {
		t.Fatalf("list level %d: %v", level, err)
	}
	return files
}

func TestString(t *testing.T) {
	srv := testserver.FakeGCS(t)
	for rawURL, want := range map[string]string{
		"gs://bkt/a/b/": "gs://bkt/a/b",
		"gs://bkt":      "gs://bkt",
	} {
		c := open(t, srv, rawURL, nil)
		if c.String() != want || c.Type() != "gs" {
			t.Errorf("%s: String %q, Type %q; want %q, gs", rawURL, c.String(), c.Type(), want)
		}
	}
}

// TestLayout checks the objects on the server: the names and metadata that
// Litestream 0.5 reads, and that objects written by other tools are listed.
func TestLayout(t *testing.T) {
	srv := testserver.FakeGCS(t)
	bucket := srv.NewBucket(t)
	c := open(t, srv, "gs://"+bucket+"/backups/db", nil)
	raw := rawClient(t, srv)

	at0 := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	at9 := time.Date(2026, 1, 2, 3, 4, 6, 0, time.FixedZone("CET", 3600))
	l0 := storagetest.File(t, 1, 2, 1, 1)
	l9 := storagetest.File(t, 1, 5, 2, 2)
	write(t, c, 0, 1, 2, l0, at0)
	write(t, c, 9, 1, 5, l9, at9)

	objs := rawObjects(t, raw, bucket)
	want := map[string]struct {
		size int
		ts   string
	}{
		"backups/db/ltx/0/0000000000000001-0000000000000002.ltx": {len(l0), "2026-01-02T03:04:05.678Z"},
		"backups/db/ltx/9/0000000000000001-0000000000000005.ltx": {len(l9), "2026-01-02T02:04:06Z"},
	}
	if len(objs) != len(want) {
		t.Fatalf("the bucket holds %v; want %d objects", slices.Sorted(mapKeys(objs)), len(want))
	}
	for name, w := range want {
		a, ok := objs[name]
		if !ok {
			t.Fatalf("no object %s; the bucket holds %v", name, slices.Sorted(mapKeys(objs)))
		}
		if a.Size != int64(w.size) {
			t.Errorf("%s: %d bytes; want %d", name, a.Size, w.size)
		}
		if got := a.Metadata["litestream-timestamp"]; got != w.ts {
			t.Errorf("%s: litestream-timestamp %q; want %q (metadata %v)", name, got, w.ts, a.Metadata)
		}
	}

	// What another tool wrote: a Litestream object, one without the
	// metadata (listed at its creation time), and names to skip.
	rawPut(t, raw, bucket, "backups/db/ltx/0/0000000000000003-0000000000000003.ltx", []byte("ltx"),
		map[string]string{"litestream-timestamp": "2025-12-31T23:59:59.5Z"})
	rawPut(t, raw, bucket, "backups/db/ltx/0/0000000000000004-0000000000000004.ltx", []byte("ltx!"), nil)
	rawPut(t, raw, bucket, "backups/db/ltx/0/0000000000000005-0000000000000005.ltx", []byte("ltx!!"),
		map[string]string{"litestream-timestamp": "yesterday"})
	for _, name := range []string{
		"backups/db/ltx/0/notes.txt",
		"backups/db/ltx/0/sub/0000000000000006-0000000000000006.ltx",
		"backups/db/ltx/0/0000000000000007-0000000000000007.ltx.tmp",
		"backups/db/ltx/00/0000000000000008-0000000000000008.ltx",
		"backups/db/0000/0000000000000009-0000000000000009.ltx",
	} {
		rawPut(t, raw, bucket, name, []byte("x"), nil)
	}
	objs = rawObjects(t, raw, bucket)

	files := list(t, c, 0)
	var got []string
	for _, f := range files {
		got = append(got, fmt.Sprintf("%d-%d:%d", f.MinTXID, f.MaxTXID, f.Size))
	}
	if want := []string{fmt.Sprintf("1-2:%d", len(l0)), "3-3:3", "4-4:4", "5-5:5"}; !slices.Equal(got, want) {
		t.Fatalf("level 0 lists %v; want %v", got, want)
	}
	if !files[0].CreatedAt.Equal(at0) || files[0].CreatedAt.Location() != time.UTC {
		t.Errorf("created-at %v; want %v in UTC", files[0].CreatedAt, at0)
	}
	if want := time.Date(2025, 12, 31, 23, 59, 59, 500_000_000, time.UTC); !files[1].CreatedAt.Equal(want) {
		t.Errorf("Litestream's object: created-at %v; want %v", files[1].CreatedAt, want)
	}
	for i, name := range map[int]string{2: "backups/db/ltx/0/0000000000000004-0000000000000004.ltx", 3: "backups/db/ltx/0/0000000000000005-0000000000000005.ltx"} {
		created := objs[name].Created
		if created.IsZero() || !files[i].CreatedAt.Equal(created) || files[i].CreatedAt.Location() != time.UTC {
			t.Errorf("%s without a usable timestamp: created-at %v; want the creation time %v in UTC", name, files[i].CreatedAt, created)
		}
	}
	if files := list(t, c, 9); len(files) != 1 || !files[0].CreatedAt.Equal(at9) {
		t.Errorf("level 9 lists %+v; want one file at %v", files, at9)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestEmulatorHost opens the replica with STORAGE_EMULATOR_HOST instead of
// the endpoint key.
func TestEmulatorHost(t *testing.T) {
	srv := testserver.FakeGCS(t)
	bucket := srv.NewBucket(t)
	t.Setenv("STORAGE_EMULATOR_HOST", srv.Host)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "none.json"))
	u, _ := url.Parse("gs://" + bucket + "/db")
	c, err := walgcs.Open(context.Background(), storage.Spec{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := storagetest.File(t, 1, 1, 2, 1)
	write(t, c, 0, 1, 1, b, time.Now())
	if got := readAll(t, c, 0, 1, 1); !bytes.Equal(got, b) {
		t.Fatal("read back different bytes")
	}
	if _, ok := rawObjects(t, rawClient(t, srv), bucket)["db/ltx/0/0000000000000001-0000000000000001.ltx"]; !ok {
		t.Fatal("the object is not on the emulator")
	}
}

// tokenServer is an OAuth2 token endpoint that hands out token, and counts
// the requests it answers.
func tokenServer(t *testing.T, token string) (tokenURL string, requests *atomic.Int64) {
	t.Helper()
	requests = new(atomic.Int64)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, token)
	}))
	t.Cleanup(hs.Close)
	return hs.URL + "/token", requests
}

// TestSkipVerify reaches an https endpoint with a self-signed certificate.
// An https endpoint is taken for Google's own, so requests to it are
// authenticated: here with Application Default Credentials.
func TestSkipVerify(t *testing.T) {
	srv := testserver.FakeGCSTLS(t)
	bucket := srv.NewBucket(t)
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	tokenURL, tokenRequests := tokenServer(t, "ya29.walship-test")
	adc, _ := serviceAccount(t, tokenURL)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", adc)

	strict := open(t, srv, "gs://"+bucket+"/db", nil)
	_, err := strict.LTXFiles(context.Background(), 0)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("listing over https with a self-signed certificate: %v; want a certificate error", err)
	}

	c := open(t, srv, "gs://"+bucket+"/db", map[string]string{"skip-verify": "true"})
	b := storagetest.File(t, 1, 1, 2, 1)
	write(t, c, 0, 1, 1, b, time.Now())
	if files := list(t, c, 0); len(files) != 1 {
		t.Fatalf("listed %d files; want 1", len(files))
	}
	if got := readAll(t, c, 0, 1, 1); !bytes.Equal(got, b) {
		t.Fatal("read back different bytes")
	}
	if tokenRequests.Load() == 0 {
		t.Fatal("an https endpoint with skip-verify sent no token request: Application Default Credentials were not used")
	}

	// With a credentials-file too, the transport that skips verification
	// must still authenticate, with that file.
	fileTokenURL, fileTokenRequests := tokenServer(t, "ya29.walship-test-file")
	credFile, _ := serviceAccount(t, fileTokenURL)
	authed := open(t, srv, "gs://"+bucket+"/db", map[string]string{"skip-verify": "true", "credentials-file": credFile})
	if files := list(t, authed, 0); len(files) != 1 {
		t.Fatalf("listed %d files with credentials; want 1", len(files))
	}
	if fileTokenRequests.Load() == 0 {
		t.Fatal("skip-verify with a credentials-file sent no token request: the credentials were not used")
	}
}

// TestEndpointAuthentication checks which requests carry credentials, seen
// by a proxy in front of fake-gcs-server: an https endpoint (a private or
// regional Google endpoint) uses Application Default Credentials, while an
// http endpoint or STORAGE_EMULATOR_HOST (an emulator) goes without.
func TestEndpointAuthentication(t *testing.T) {
	srv := testserver.FakeGCS(t)
	bucket := srv.NewBucket(t)
	const token = "ya29.walship-adc-token"
	tokenURL, tokenRequests := tokenServer(t, token)
	adc, _ := serviceAccount(t, tokenURL)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", adc)
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	b := storagetest.File(t, 1, 1, 2, 1)

	for _, tt := range []struct {
		name         string
		tls          bool
		emulatorHost bool
		wantAuth     string
	}{
		{name: "https endpoint", tls: true, wantAuth: "Bearer " + token},
		{name: "http endpoint"},
		{name: "https endpoint with STORAGE_EMULATOR_HOST", tls: true, emulatorHost: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.emulatorHost {
				t.Setenv("STORAGE_EMULATOR_HOST", srv.Host)
			}
			before := tokenRequests.Load()
			p := newProxyTLS(t, srv, nil, tt.tls)
			c := open(t, srv, "gs://"+bucket+"/"+strings.ReplaceAll(tt.name, " ", "-"), map[string]string{"endpoint": p.URL, "skip-verify": fmt.Sprint(tt.tls)})
			write(t, c, 0, 1, 1, b, time.Now())
			list(t, c, 0)
			readAll(t, c, 0, 1, 1)

			p.mu.Lock()
			defer p.mu.Unlock()
			if len(p.reqs) < 3 {
				t.Fatalf("%d requests through the proxy; want at least 3", len(p.reqs))
			}
			for _, r := range p.reqs {
				if got := r.Header.Get("Authorization"); got != tt.wantAuth {
					t.Errorf("%s %s: Authorization %q; want %q", r.Method, r.URL.Path, got, tt.wantAuth)
				}
			}
			if fetched := tokenRequests.Load() > before; fetched != (tt.wantAuth != "") {
				t.Errorf("token requests made: %v; want %v", fetched, tt.wantAuth != "")
			}
		})
	}
}

// TestReadPastEnd reads at and past the end of a file: empty, as from the
// file backend, and not an error.
func TestReadPastEnd(t *testing.T) {
	srv := testserver.FakeGCS(t)
	u, _ := url.Parse("gs://" + srv.NewBucket(t) + "/db")
	c, err := walgcs.Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"endpoint": srv.Endpoint}, Transfers: storage.NewTransfers(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ref := file.New(t.TempDir())
	b := storagetest.File(t, 1, 1, 2, 1)
	n := int64(len(b))
	write(t, c, 0, 1, 1, b, time.Now())
	write(t, ref, 0, 1, 1, b, time.Now())

	read := func(c storage.Client, offset, size int64) ([]byte, error) {
		rc, err := c.OpenLTXFile(context.Background(), 0, 1, 1, offset, size)
		if err != nil {
			return nil, err
		}
		defer rc.Close() // frees the only transfer slot for the next read
		return io.ReadAll(rc)
	}
	for _, r := range []struct{ offset, size int64 }{
		{n, 0}, {n, 5}, {n + 1, 0}, {n + 1000, 1}, {n - 1, 0}, {n - 1, 5}, {n - 3, 2},
	} {
		want, err := read(ref, r.offset, r.size)
		if err != nil {
			t.Fatalf("file backend: offset %d size %d: %v", r.offset, r.size, err)
		}
		got, err := read(c, r.offset, r.size)
		if err != nil {
			t.Errorf("offset %d size %d of a %d-byte file: %v; want %d bytes as from the file backend", r.offset, r.size, n, err, len(want))
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("offset %d size %d of a %d-byte file: read %d bytes; want %d as from the file backend", r.offset, r.size, n, len(got), len(want))
		}
	}
	// Past the end of a file that does not exist is still not found.
	if _, err := c.OpenLTXFile(context.Background(), 0, 2, 2, 1<<20, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("open a missing file past its end: %v; want storage.ErrNotFound", err)
	}
}

func TestMissingBucket(t *testing.T) {
	srv := testserver.FakeGCS(t)
	c := open(t, srv, "gs://no-such-bucket/db", nil)
	_, err := c.LTXFiles(context.Background(), 0)
	if err == nil || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) || !strings.Contains(err.Error(), "gs://no-such-bucket/db") {
		t.Fatalf("listing a missing bucket: %v; want an error that names the bucket and says it does not exist", err)
	}
}

// TestFailedResumableUpload fails the source after several chunks of a
// resumable upload went to the server: no object may appear.
func TestFailedResumableUpload(t *testing.T) {
	srv := testserver.FakeGCS(t)
	bucket := srv.NewBucket(t)
	c := open(t, srv, "gs://"+bucket+"/db", map[string]string{"part-size": "256KiB"})

	b := storagetest.File(t, 1, 1, 500, 1) // 2 MB: 8 chunks
	var sent countingReader
	sent.r = bytes.NewReader(b[:1<<20])
	r := io.MultiReader(&sent, failingReader{})
	if _, err := c.WriteLTXFile(context.Background(), 9, 1, 1, r, time.Now()); err == nil || !strings.Contains(err.Error(), "source failed") {
		t.Fatalf("a write whose source failed: %v; want the source's error", err)
	}
	if sent.n != 1<<20 {
		t.Fatalf("the upload read %d bytes before the failure; want %d", sent.n, 1<<20)
	}
	if objs := rawObjects(t, rawClient(t, srv), bucket); len(objs) != 0 {
		t.Fatalf("a failed upload left %v", slices.Sorted(mapKeys(objs)))
	}

	// The same through a source that is not seekable succeeds.
	write(t, c, 9, 1, 1, b, time.Now())
	info, err := c.WriteLTXFile(context.Background(), 9, 1, 1, io.MultiReader(bytes.NewReader(b)), time.Now())
	if err != nil || info.Size != int64(len(b)) {
		t.Fatalf("write from a stream: %+v, %v", info, err)
	}
	if got := readAll(t, c, 9, 1, 1); !bytes.Equal(got, b) {
		t.Fatal("read back different bytes")
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("source failed") }

// TestTransfersReleasedOnClose checks that a download holds its transfer
// slot until the reader is closed.
func TestTransfersReleasedOnClose(t *testing.T) {
	srv := testserver.FakeGCS(t)
	u, _ := url.Parse("gs://" + srv.NewBucket(t) + "/db")
	c, err := walgcs.Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"endpoint": srv.Endpoint}, Transfers: storage.NewTransfers(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := storagetest.File(t, 1, 1, 2, 1)
	write(t, c, 0, 1, 1, b, time.Now())

	rc, err := c.OpenLTXFile(context.Background(), 0, 1, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.WriteLTXFile(ctx, 0, 2, 2, bytes.NewReader(b), time.Now()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a write while the only transfer slot is taken by an open reader: %v; want it to wait until its deadline", err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	write(t, c, 0, 2, 2, b, time.Now()) // the slot is free again
	if _, err := c.OpenLTXFile(context.Background(), 0, 7, 7, 0, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("open a missing file: %v", err)
	}
	write(t, c, 0, 3, 3, b, time.Now()) // a failed open gave its slot back
}

// proxy forwards requests to srv, recording them; fail, when it returns
// true, answers a request with 503 instead.
type proxy struct {
	URL string

	mu     sync.Mutex
	reqs   []*http.Request
	failed int
}

func newProxy(t testing.TB, srv *testserver.GCSServer, fail func(r *http.Request, n int) bool) *proxy {
	t.Helper()
	return newProxyTLS(t, srv, fail, false)
}

// newProxyTLS is newProxy, serving https with a self-signed certificate if
// tls is set.
func newProxyTLS(t testing.TB, srv *testserver.GCSServer, fail func(r *http.Request, n int) bool, tls bool) *proxy {
	t.Helper()
	target, _ := url.Parse(srv.Endpoint)
	rp := httputil.NewSingleHostReverseProxy(target)
	director := rp.Director
	rp.Director = func(r *http.Request) {
		director(r)
		r.Host = target.Host // fake-gcs-server routes XML reads by host
	}
	p := &proxy{}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.reqs = append(p.reqs, r.Clone(context.Background()))
		n := 0
		for _, q := range p.reqs {
			if q.Method == r.Method && q.URL.Path == r.URL.Path {
				n++
			}
		}
		f := fail != nil && fail(r, n)
		if f {
			p.failed++
		}
		p.mu.Unlock()
		if f {
			io.Copy(io.Discard, r.Body)
			http.Error(w, `{"error":{"code":503,"message":"try again"}}`, http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	if tls {
		hs.StartTLS()
	} else {
		hs.Start()
	}
	t.Cleanup(hs.Close)
	p.URL = hs.URL
	return p
}

// TestRetry fails the first attempt of every request with 503: the SDK's
// retries must carry every operation, uploads included.
func TestRetry(t *testing.T) {
	srv := testserver.FakeGCS(t)
	bucket := srv.NewBucket(t)
	p := newProxy(t, srv, func(_ *http.Request, n int) bool { return n == 1 })
	c := open(t, srv, "gs://"+bucket+"/db", map[string]string{"endpoint": p.URL})

	b := storagetest.File(t, 1, 1, 3, 1)
	info := write(t, c, 0, 1, 1, b, time.Now())
	if files := list(t, c, 0); len(files) != 1 || files[0].Size != int64(len(b)) {
		t.Fatalf("listed %+v", files)
	}
	if got := readAll(t, c, 0, 1, 1); !bytes.Equal(got, b) {
		t.Fatal("read back different bytes")
	}
	if err := c.DeleteLTXFiles(context.Background(), []*ltx.FileInfo{info}); err != nil {
		t.Fatal(err)
	}
	if files := list(t, c, 0); len(files) != 0 {
		t.Fatalf("after delete: %+v", files)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// One failure each: upload, list, read, delete (the second listing's
	// path is the list path again, which now succeeds at once).
	if p.failed != 4 {
		t.Fatalf("the proxy failed %d requests; want 4 (upload, list, read, delete)", p.failed)
	}
}

// TestUnavailable fails every request: each operation must return an error,
// and no later than its context ends.
func TestUnavailable(t *testing.T) {
	srv := testserver.FakeGCS(t)
	bucket := srv.NewBucket(t)
	p := newProxy(t, srv, func(*http.Request, int) bool { return true })
	c := open(t, srv, "gs://"+bucket+"/db", map[string]string{"endpoint": p.URL})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(storagetest.File(t, 1, 1, 1, 1)), time.Now()); err == nil {
		t.Fatal("a write to an unavailable server succeeded")
	}
	_, err := c.LTXFiles(context.Background(), 0) // bounded by the SDK's attempts
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "gs://"+bucket+"/db") {
		t.Fatalf("listing an unavailable server: %v; want the 503 error naming the replica", err)
	}
	if objs := rawObjects(t, rawClient(t, srv), bucket); len(objs) != 0 {
		t.Fatalf("failed writes left %v", slices.Sorted(mapKeys(objs)))
	}
}

// serviceAccount writes a service account key file whose tokens come from
// tokenURL, and returns its path and secrets.
func serviceAccount(t *testing.T, tokenURL string) (path string, secrets []string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	const keyID = "5ecre7-key-id-0123456789abcdef"
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "walship-test",
		"private_key_id": keyID,
		"private_key":    keyPEM,
		"client_email":   "walship@walship-test.iam.gserviceaccount.com",
		"client_id":      "1234567890",
		"token_uri":      tokenURL,
	})
	path = filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// A line from the middle of the key: any part of it would be a leak.
	lines := strings.Split(keyPEM, "\n")
	return path, []string{keyID, lines[len(lines)/2]}
}

// TestCredentialsFile authenticates with a service account key through an
// endpoint, and checks that errors never show the key or the token.
func TestCredentialsFile(t *testing.T) {
	srv := testserver.FakeGCS(t)
	bucket := srv.NewBucket(t)
	const token = "ya29.walship-test-5ecre7-access-token"
	var tokenRequests int
	var tokenMu sync.Mutex
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenMu.Lock()
		tokenRequests++
		tokenMu.Unlock()
		if err := r.ParseForm(); err != nil || r.Form.Get("assertion") == "" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, token)
	}))
	defer tokens.Close()
	credFile, secrets := serviceAccount(t, tokens.URL+"/token")
	secrets = append(secrets, token)

	p := newProxy(t, srv, nil)
	c := open(t, srv, "gs://"+bucket+"/db", map[string]string{"endpoint": p.URL, "credentials-file": credFile})
	b := storagetest.File(t, 1, 1, 2, 1)
	write(t, c, 0, 1, 1, b, time.Now())
	list(t, c, 0)
	readAll(t, c, 0, 1, 1)

	p.mu.Lock()
	for _, r := range p.reqs {
		if got := r.Header.Get("Authorization"); got != "Bearer "+token {
			t.Errorf("%s %s: Authorization %q; want the service account's token", r.Method, r.URL.Path, got)
		}
	}
	n := len(p.reqs)
	p.mu.Unlock()
	if n < 3 || tokenRequests == 0 {
		t.Fatalf("%d requests through the proxy, %d token requests; want at least 3 and 1", n, tokenRequests)
	}

	// A failing request: the error must not show the credentials.
	missing := open(t, srv, "gs://no-such-bucket/db", map[string]string{"endpoint": p.URL, "credentials-file": credFile})
	_, err := missing.LTXFiles(context.Background(), 0)
	checkNoSecrets(t, "list a missing bucket", err, secrets)
	_, err = missing.OpenLTXFile(context.Background(), 0, 1, 1, 0, 0)
	checkNoSecrets(t, "read from a missing bucket", err, secrets)
	_, err = missing.WriteLTXFile(context.Background(), 0, 1, 1, bytes.NewReader(b), time.Now())
	checkNoSecrets(t, "write to a missing bucket", err, secrets)

	// A token endpoint that refuses the key.
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`, http.StatusBadRequest)
	}))
	defer refuse.Close()
	badFile, badSecrets := serviceAccount(t, refuse.URL+"/token")
	bad := open(t, srv, "gs://"+bucket+"/db", map[string]string{"endpoint": p.URL, "credentials-file": badFile})
	_, err = bad.LTXFiles(context.Background(), 0)
	checkNoSecrets(t, "list with refused credentials", err, badSecrets)
	if !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("list with refused credentials: %v; want the token endpoint's answer", err)
	}
}

func checkNoSecrets(t *testing.T, what string, err error, secrets []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("%s: the error shows a secret (%q): %v", what, s, err)
		}
	}
}

func TestCredentialsErrors(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	dir := t.TempDir()

	notJSON := filepath.Join(dir, "creds.json")
	if err := os.WriteFile(notJSON, []byte("-----BEGIN PRIVATE KEY-----\n5ecre7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("gs://bucket/db")
	_, err := walgcs.Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"credentials-file": notJSON}})
	if err == nil || !strings.Contains(err.Error(), notJSON) || strings.Contains(err.Error(), "5ecre7") {
		t.Fatalf("a credentials-file that is not JSON: %v; want an error naming the file, not showing its content", err)
	}
	_, err = walgcs.Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"credentials-file": filepath.Join(dir, "missing.json")}})
	if err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("a missing credentials-file: %v", err)
	}

	// Application Default Credentials pointing at a missing file fail at
	// Open, with a hint of where credentials come from.
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(dir, "adc.json"))
	_, err = walgcs.Open(context.Background(), storage.Spec{URL: u})
	if err == nil || !strings.Contains(err.Error(), "gs://bucket/db") || !strings.Contains(err.Error(), "GOOGLE_APPLICATION_CREDENTIALS") {
		t.Fatalf("missing Application Default Credentials: %v", err)
	}
	// So does an https endpoint, which is Google's (Private Service
	// Connect, regional): only emulators go without credentials.
	_, err = walgcs.Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"endpoint": "https://storage-walship.p.googleapis.com"}})
	if err == nil || !strings.Contains(err.Error(), "GOOGLE_APPLICATION_CREDENTIALS") {
		t.Fatalf("an https endpoint without Application Default Credentials: %v; want an error saying where credentials come from", err)
	}
	// An http endpoint is an emulator's: no credentials needed.
	c, err := walgcs.Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"endpoint": "http://127.0.0.1:1"}})
	if err != nil {
		t.Fatalf("an http endpoint without credentials: %v", err)
	}
	c.Close()
}
