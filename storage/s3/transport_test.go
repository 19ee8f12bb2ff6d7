package s3

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/storagetest"
)

const emptyListing = `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>`

// TestTLSTrust checks the transport's certificate checks: a server with an
// unknown CA is refused with advice, trusted through AWS_CA_BUNDLE, and
// accepted unverified with skip-verify. (The server only answers listings:
// this is a test of the client's transport, not of S3.)
func TestTLSTrust(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		io.WriteString(w, emptyListing)
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	ts.StartTLS()
	defer ts.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{"endpoint": ts.URL, "access-key-id": "id", "secret-access-key": "secret"}
	try := func(extra map[string]string) error {
		t.Helper()
		k := map[string]string{}
		for n, v := range keys {
			k[n] = v
		}
		for n, v := range extra {
			k[n] = v
		}
		c := openSpec(t, storage.Spec{URL: mustURL(t, "s3://b/db"), Keys: k})
		_, err := c.LTXFiles(context.Background(), 0)
		return err
	}

	t.Setenv("AWS_CA_BUNDLE", "")
	err := try(nil)
	if err == nil || !strings.Contains(err.Error(), "certificate is not trusted: add its CA with AWS_CA_BUNDLE, or set skip-verify: true") {
		t.Fatalf("unknown CA: %v", err)
	}
	if err := try(map[string]string{"skip-verify": "true"}); err != nil {
		t.Fatalf("skip-verify: %v", err)
	}
	t.Setenv("AWS_CA_BUNDLE", caFile)
	if err := try(nil); err != nil {
		t.Fatalf("CA in AWS_CA_BUNDLE: %v", err)
	}
}

// TestRegionLookup checks that a replica on AWS with no region anywhere
// makes no request when opened, looks the bucket's region up once on first
// use, and retries a lookup that failed. (Requests are answered by the
// test's transport: nothing leaves the machine.)
func TestRegionLookup(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")

	var mu sync.Mutex
	var requests []string
	bucketExists := false
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		requests = append(requests, r.Method+" "+r.URL.Host+" signed="+fmt.Sprint(r.Header.Get("Authorization") != ""))
		resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: r}
		switch {
		case r.Method == http.MethodHead && bucketExists:
			resp.StatusCode = http.StatusMovedPermanently
			resp.Header.Set("X-Amz-Bucket-Region", "eu-west-2")
		case r.Method == http.MethodHead:
			resp.StatusCode = http.StatusNotFound
		default:
			resp.Header.Set("Content-Type", "application/xml")
			resp.Body = io.NopCloser(strings.NewReader(emptyListing))
		}
		return resp, nil
	})
	c, err := open(context.Background(), storage.Spec{
		URL:  mustURL(t, "s3://my-bucket/db"),
		Keys: map[string]string{"access-key-id": "id", "secret-access-key": "secret"},
	}, hooks{transport: func(http.RoundTripper) http.RoundTripper { return rt }})
	if err != nil {
		t.Fatal(err)
	}
	if len(requests) != 0 {
		t.Fatalf("Open sent requests: %q", requests)
	}

	_, err = c.LTXFiles(context.Background(), 0)
	if err == nil || !strings.Contains(err.Error(), `no such bucket on AWS S3`) {
		t.Fatalf("missing bucket: %v", err)
	}
	bucketExists = true
	for range 2 {
		if _, err := c.LTXFiles(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"HEAD my-bucket.s3.us-east-1.amazonaws.com signed=false", // the bucket is missing
		"HEAD my-bucket.s3.us-east-1.amazonaws.com signed=false", // looked up again
		"GET my-bucket.s3.eu-west-2.amazonaws.com signed=true",
		"GET my-bucket.s3.eu-west-2.amazonaws.com signed=true", // not looked up again
	}
	if strings.Join(requests, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(requests, "\n"), strings.Join(want, "\n"))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestFaults puts a proxy that fails every request twice (503 SlowDown,
// then a reset connection) and cuts the first answer to every download
// short, in front of MinIO, and checks that every operation still succeeds:
// the SDK retries, and downloads resume.
func TestFaults(t *testing.T) {
	srv := testserver.MinIO(t)
	proxy := newFaultProxy(t, srv.Endpoint)
	bucket := srv.Bucket(t)
	s := spec(srv, bucket, "db", map[string]string{"endpoint": proxy.URL})
	var logs testutil.SyncBuffer
	s.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := openSpec(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	small, large := storagetest.File(t, 1, 1, 3, 1), storagetest.File(t, 1, 2, 3000, 2) // 1 PUT; 3 parts
	at := time.Now()
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(small), at); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteLTXFile(ctx, 1, 1, 2, bytes.NewReader(large), at); err != nil {
		t.Fatal(err)
	}
	files, err := c.LTXFiles(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Size != int64(len(large)) {
		t.Fatalf("listed %+v", files)
	}
	rc, err := c.OpenLTXFile(ctx, 1, 1, 2, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, large) {
		t.Fatalf("read back %d bytes that differ from the %d written", len(got), len(large))
	}
	if got := readAll(t, c, 0, 1, 1, 10, 100); !bytes.Equal(got, small[10:110]) {
		t.Fatal("ranged read differs")
	}
	if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{files[0]}); err != nil {
		t.Fatal(err)
	}

	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if proxy.slowDowns < 8 || proxy.resets < 8 || proxy.cuts < 1 {
		t.Fatalf("the proxy injected %d SlowDowns, %d resets and %d cut downloads; the test meant more", proxy.slowDowns, proxy.resets, proxy.cuts)
	}
	if !strings.Contains(logs.String(), "resumed an interrupted download") {
		t.Fatalf("the cut download was not resumed; the client logged:\n%s", logs.String())
	}
}

// faultProxy is a reverse proxy that fails the first two tries of each
// distinct request (method and URI), and cuts short the third answer to
// a GET of an object.
type faultProxy struct {
	URL string

	mu                      sync.Mutex
	tries                   map[string]int
	slowDowns, resets, cuts int
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{tries: make(map[string]int)}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // cut downloads are the point
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Header.Get("X-Fault-Cut") != "" && resp.StatusCode/100 == 2 && resp.ContentLength > 1<<20 {
			// Far enough in that the headers and some data have been sent.
			resp.Body = &cutBody{ReadCloser: resp.Body, left: 1 << 20}
			p.mu.Lock()
			p.cuts++
			p.mu.Unlock()
		}
		return nil
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + r.URL.RequestURI()
		p.mu.Lock()
		p.tries[key]++
		try := p.tries[key]
		object := r.Method == http.MethodGet && strings.Count(strings.Trim(r.URL.Path, "/"), "/") >= 1
		switch {
		case try == 1:
			p.slowDowns++
		case try == 2:
			p.resets++
		}
		p.mu.Unlock()

		switch {
		case try == 1:
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
		case try == 2:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				panic(err)
			}
			if tcp, ok := conn.(*net.TCPConn); ok {
				tcp.SetLinger(0) // close with a RST
			}
			conn.Close()
		case try == 3 && object:
			r.Header.Set("X-Fault-Cut", "1")
			rp.ServeHTTP(w, r)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.Start()
	t.Cleanup(ts.Close)
	p.URL = ts.URL
	return p
}

// cutBody fails after left bytes, as a connection that breaks.
type cutBody struct {
	io.ReadCloser
	left int
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errors.New("injected: connection lost")
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= n
	return n, err
}
