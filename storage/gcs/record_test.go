package gcs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
)

// TestRecordPreconditions checks that record writes carry their
// precondition to the server (ifGenerationMatch=0 to create, the
// generation read to replace) and survive a 503.
func TestRecordPreconditions(t *testing.T) {
	srv := testserver.FakeGCS(t)
	bucket := srv.NewBucket(t)
	p := newProxy(t, srv, func(r *http.Request, n int) bool { return r.Method == http.MethodPost && n == 1 })
	c := open(t, srv, "gs://"+bucket+"/db", map[string]string{"endpoint": p.URL})
	ctx := context.Background()

	v1, err := c.WriteRecord(ctx, "owner.json", []byte(`{"a":1}`), "")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := c.WriteRecord(ctx, "owner.json", []byte(`{"a":2}`), v1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteRecord(ctx, "owner.json", []byte(`{"a":3}`), v1); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("replace at a stale generation: %v; want a conflict", err)
	}
	data, v, err := c.ReadRecord(ctx, "owner.json")
	if err != nil || string(data) != `{"a":2}` || v != v2 {
		t.Fatalf("read %q version %q, %v; want {\"a\":2} version %q", data, v, err, v2)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed != 1 {
		t.Fatalf("the proxy failed %d uploads; the test meant 1", p.failed)
	}
	var conds []string
	for _, r := range p.reqs {
		if r.Method != http.MethodPost {
			continue
		}
		q := r.URL.Query()
		if q.Get("name") != "db/owner.json" {
			t.Errorf("an upload of %q; want db/owner.json", q.Get("name"))
		}
		conds = append(conds, q.Get("ifGenerationMatch"))
	}
	// The create twice (the 503, then its retry), the replace, the stale
	// replace.
	want := []string{"0", "0", v1, v1}
	if strings.Join(conds, ",") != strings.Join(want, ",") {
		t.Fatalf("uploads sent ifGenerationMatch %q; want %q", conds, want)
	}
}

// TestRecordRetriedAfterSuccess loses the answer to a record create that
// the server carried out: the SDK sends it again, the server refuses it,
// and the write is reported as a conflict; reading the record shows the
// write.
func TestRecordRetriedAfterSuccess(t *testing.T) {
	srv := testserver.FakeGCS(t)
	bucket := srv.NewBucket(t)
	target, _ := url.Parse(srv.Endpoint)
	rp := httputil.NewSingleHostReverseProxy(target)
	director := rp.Director
	rp.Director = func(r *http.Request) {
		director(r)
		r.Host = target.Host // fake-gcs-server routes XML reads by host
	}
	var lost atomic.Bool
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodPost && resp.StatusCode == http.StatusOK && lost.CompareAndSwap(false, true) {
			resp.Body.Close()
			resp.StatusCode = http.StatusServiceUnavailable
			resp.Body = io.NopCloser(strings.NewReader(`{"error":{"code":503,"message":"try again"}}`))
			resp.ContentLength = -1
			resp.Header.Del("Content-Length")
		}
		return nil
	}
	hs := httptest.NewServer(rp)
	t.Cleanup(hs.Close)
	c := open(t, srv, "gs://"+bucket+"/db", map[string]string{"endpoint": hs.URL})
	ctx := context.Background()

	data := []byte(`{"owner":"me"}`)
	if _, err := c.WriteRecord(ctx, "owner.json", data, ""); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a create retried after it succeeded: %v; want a conflict", err)
	}
	if !lost.Load() {
		t.Fatal("no answer was lost: the test did not test")
	}
	got, _, err := c.ReadRecord(ctx, "owner.json")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %q, %v; want %q", got, err, data)
	}
}

// TestRecordLimits checks that an object larger than a record is not read
// as one, and that versions that are not generations are refused before
// anything is written.
func TestRecordLimits(t *testing.T) {
	srv := testserver.FakeGCS(t)
	bucket := srv.NewBucket(t)
	c := open(t, srv, "gs://"+bucket+"/db", nil)
	ctx := context.Background()
	rawPut(t, rawClient(t, srv), bucket, "db/big.json", bytes.Repeat([]byte("x"), storage.MaxRecordSize+1), nil)
	if _, _, err := c.ReadRecord(ctx, "big.json"); err == nil || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("read an object larger than a record: %v", err)
	}
	// Generation 0 would be no precondition at all.
	for _, v := range []string{"0", "-1", "abc", `"etag"`} {
		if _, err := c.WriteRecord(ctx, "owner.json", []byte(`{}`), v); err == nil || errors.Is(err, storage.ErrConflict) {
			t.Fatalf("a write at version %q: %v; want an error that is not a conflict", v, err)
		}
	}
	if _, _, err := c.ReadRecord(ctx, "owner.json"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("refused writes left a record: %v", err)
	}
}
