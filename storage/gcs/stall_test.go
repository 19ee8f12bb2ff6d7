package gcs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
)

// stalledServer listens on 127.0.0.1 and accepts connections, then neither
// reads from them nor answers: a server that is up but hung. It returns the
// endpoint.
func stalledServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// TestStalledServer checks that every operation on a server that accepts
// connections and never answers ends with an error, although the context
// has no deadline.
func TestStalledServer(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	endpoint := stalledServer(t)
	const stall = 200 * time.Millisecond
	openStalled := func(keys map[string]string) *Client {
		t.Helper()
		keys["endpoint"] = endpoint
		c, err := open(context.Background(), spec(t, "gs://bucket/db", keys), knobs{stall: stall})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := openStalled(map[string]string{})
	small := bytes.Repeat([]byte("x"), 4<<10)
	// A file sent in one request, larger than the socket buffers can
	// take: the body's write stalls before the request is complete.
	oneShot := openStalled(map[string]string{"part-size": "64MiB"})
	large := make([]byte, 48<<20)
	// A resumable upload of several chunks.
	resumable := openStalled(map[string]string{"part-size": "256KiB"})
	medium := make([]byte, 1<<20)

	for _, op := range []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"list", func(ctx context.Context) error {
			_, err := c.LTXFiles(ctx, 0)
			return err
		}},
		{"open", func(ctx context.Context) error {
			rc, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"write", func(ctx context.Context) error {
			_, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(small), time.Now())
			return err
		}},
		{"write in one request", func(ctx context.Context) error {
			_, err := oneShot.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(large), time.Now())
			return err
		}},
		{"resumable write", func(ctx context.Context) error {
			_, err := resumable.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(medium), time.Now())
			return err
		}},
		{"delete", func(ctx context.Context) error {
			return c.DeleteLTXFiles(ctx, []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}})
		}},
	} {
		t.Run(op.name, func(t *testing.T) {
			// The context has no deadline: only the stall timeouts can end
			// the operation. A hang is reported well before go test's own
			// timeout would end the run.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- op.fn(ctx) }()
			select {
			case err := <-errc:
				if err == nil {
					t.Fatal("succeeded against a server that never answers")
				}
				if !strings.Contains(err.Error(), "gs://bucket/db") {
					t.Errorf("error %q does not name the replica", err)
				}
				t.Logf("error: %v", err)
			case <-time.After(3 * time.Minute):
				cancel()
				t.Fatal("hung on a server that never answers")
			}
		})
	}
}

// TestStallGuard checks that a response body that stops arriving fails the
// read with a retryable error, and that time spent outside Read is not
// taken for a stall.
func TestStallGuard(t *testing.T) {
	const stall = 100 * time.Millisecond
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "8")
		io.WriteString(w, "half")
		w.(http.Flusher).Flush()
		if r.URL.Path == "/stall" {
			<-release
			return
		}
		io.WriteString(w, "full")
	}))
	defer hs.Close()
	defer close(release)
	hc := &http.Client{Transport: &stallGuard{rt: baseTransport(false, stall), timeout: stall}}

	resp, err := hc.Get(hs.URL + "/stall")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "half" || !errors.Is(err, errStall) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a body that stalls after 4 bytes: read %q, %v; want \"half\" and the stall error", b, err)
	}

	// A reader that pauses between reads longer than the timeout is no
	// stall: the bytes are there when it reads again.
	resp, err = hc.Get(hs.URL + "/slow-reader")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, p); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * stall)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(p)+string(rest) != "halffull" {
		t.Fatalf("a reader that paused: read %q, %v; want \"halffull\"", string(p)+string(rest), err)
	}
}

// TestStalledChunk stalls the second chunk of a resumable upload to
// fake-gcs-server, and every attempt to send it again: the upload must fail
// after the chunk's deadlines, leaving no object, and the same upload
// succeeds once the server answers again.
func TestStalledChunk(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	srv := testserver.FakeGCS(t)
	bucket := srv.NewBucket(t)
	target, _ := url.Parse(srv.Endpoint)
	rp := httputil.NewSingleHostReverseProxy(target)
	var stalling atomic.Bool
	stalling.Store(true)
	var stalled atomic.Int64
	var proxyURL string
	// fake-gcs-server sends the chunks of a resumable upload to its own
	// address: to this proxy instead.
	rp.ModifyResponse = func(resp *http.Response) error {
		if loc := resp.Header.Get("Location"); loc != "" {
			resp.Header.Set("Location", strings.Replace(loc, srv.Endpoint, proxyURL, 1))
		}
		return nil
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The chunks after the first: "bytes 262144-524287/*".
		cr := r.Header.Get("Content-Range")
		if r.URL.Query().Get("upload_id") != "" && strings.HasPrefix(cr, "bytes ") && !strings.HasPrefix(cr, "bytes 0-") && stalling.Load() {
			// Take the chunk, and never answer.
			stalled.Add(1)
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		r.Host = target.Host
		rp.ServeHTTP(w, r)
	}))
	defer hs.Close()
	proxyURL = hs.URL

	c, err := open(context.Background(), spec(t, "gs://"+bucket+"/db", map[string]string{"endpoint": hs.URL, "part-size": "256KiB"}),
		knobs{stall: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 1<<20) // 4 chunks
	for i := range b {
		b[i] = byte(i * 7)
	}
	_, err = c.WriteLTXFile(context.Background(), 0, 1, 1, bytes.NewReader(b), time.Now())
	if err == nil {
		t.Fatal("an upload whose second chunk is never answered succeeded")
	}
	t.Logf("error: %v", err)
	if n := stalled.Load(); n < 1 {
		t.Fatalf("%d chunk requests stalled; want at least 1", n)
	}
	if _, err := c.OpenLTXFile(context.Background(), 0, 1, 1, 0, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after a failed upload, open: %v; want storage.ErrNotFound", err)
	}

	stalling.Store(false)
	if _, err := c.WriteLTXFile(context.Background(), 0, 1, 1, bytes.NewReader(b), time.Now()); err != nil {
		t.Fatal(err)
	}
	rc, err := c.OpenLTXFile(context.Background(), 0, 1, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("read back %d bytes, %v; want the %d bytes written", len(got), err, len(b))
	}
}
