package testserver

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault is one way FaultProxy fails a request.
type Fault int

const (
	FaultSlowDown    Fault = iota // 503 SlowDown, S3's throttling answer
	FaultInternal                 // 500 InternalError
	FaultResetBefore              // the connection is reset before the request reaches the server
	FaultResetDuring              // the server answers, then the connection is reset halfway through the body
	FaultDelay                    // the request waits up to MaxDelay, then goes through
	NumFaults
)

func (f Fault) String() string {
	return [...]string{"503 SlowDown", "500 InternalError", "reset before the request", "reset during the response", "delay"}[f]
}

// FaultProxy is an HTTP reverse proxy on 127.0.0.1 in front of a test server.
// It fails a share of requests the way object stores and networks fail:
// throttling and server errors, connections reset before or during the
// response, and slow answers. Everything else passes through unchanged.
type FaultProxy struct {
	// URL is the proxy's address, to use as the client's endpoint.
	URL string

	target   *url.URL
	rate     float64
	maxDelay time.Duration
	srv      *httptest.Server
	client   *http.Client

	mu     sync.Mutex
	down   bool
	rng    *rand.Rand
	counts [NumFaults]atomic.Int64
	total  atomic.Int64
}

// NewFaultProxy starts a proxy to target (http://127.0.0.1:port) that gives
// each request a fault with probability rate, picking the fault at random.
// It stops when the test ends.
func NewFaultProxy(t testing.TB, target string, rate float64) *FaultProxy {
	t.Helper()
	p, err := StartFaultProxy(target, rate, uint64(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// StartFaultProxy is NewFaultProxy outside a test (the torture suite): the
// faults are drawn from seed, and Close stops the proxy.
func StartFaultProxy(target string, rate float64, seed uint64) (*FaultProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("fault proxy target %q: %w", target, err)
	}
	p := &FaultProxy{
		target:   u,
		rate:     rate,
		maxDelay: 300 * time.Millisecond,
		rng:      rand.New(rand.NewPCG(seed, 11)),
		client: &http.Client{
			Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 64},
			// The client follows nothing: redirects go back to it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	p.srv = httptest.NewServer(p)
	p.URL = p.srv.URL
	return p, nil
}

// Close stops the proxy.
func (p *FaultProxy) Close() {
	p.srv.Close()
	p.client.CloseIdleConnections()
}

// Count returns how many requests got fault f.
func (p *FaultProxy) Count(f Fault) int64 { return p.counts[f].Load() }

// Total returns how many requests the proxy received.
func (p *FaultProxy) Total() int64 { return p.total.Load() }

// Summary describes the faults injected so far.
func (p *FaultProxy) Summary() string {
	var parts []string
	for f := Fault(0); f < NumFaults; f++ {
		parts = append(parts, fmt.Sprintf("%s: %d", f, p.Count(f)))
	}
	return fmt.Sprintf("%d requests; %s", p.Total(), strings.Join(parts, ", "))
}

// SetRate changes the share of requests that fail.
func (p *FaultProxy) SetRate(rate float64) {
	p.mu.Lock()
	p.rate = rate
	p.mu.Unlock()
}

// SetMaxDelay changes the longest delay (FaultDelay): a stall.
func (p *FaultProxy) SetMaxDelay(d time.Duration) {
	p.mu.Lock()
	p.maxDelay = max(d, 1)
	p.mu.Unlock()
}

// SetDown makes the server look unavailable: while down, every request is
// answered 503 and reaches nothing. Such requests are not counted as faults.
func (p *FaultProxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// Down reports whether SetDown(true) is in effect.
func (p *FaultProxy) Down() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

// pick decides the fate of one request: a fault, or -1 for none.
func (p *FaultProxy) pick() (Fault, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rng.Float64() >= p.rate {
		return -1, 0
	}
	f := Fault(p.rng.IntN(int(NumFaults)))
	return f, time.Duration(p.rng.Int64N(int64(p.maxDelay)))
}

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.total.Add(1)
	if p.Down() {
		io.Copy(io.Discard, r.Body)
		s3Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "The service is down (test).")
		return
	}
	fault, delay := p.pick()
	if fault >= 0 {
		p.counts[fault].Add(1)
	}
	switch fault {
	case FaultSlowDown:
		io.Copy(io.Discard, r.Body)
		s3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
		return
	case FaultInternal:
		io.Copy(io.Discard, r.Body)
		s3Error(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
		return
	case FaultResetBefore:
		reset(w)
		return
	case FaultDelay:
		time.Sleep(delay)
	}

	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	out.Host = r.Host // signatures cover the Host header
	resp, err := p.client.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if fault == FaultResetDuring {
		resetDuring(w, resp)
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>fault</RequestId></Error>`, code, msg)
}

// reset closes the client's connection with a TCP RST.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// resetDuring sends the status, the headers and half of the body, then resets
// the connection.
func resetDuring(w http.ResponseWriter, resp *http.Response) {
	body, _ := io.ReadAll(resp.Body)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer func() {
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		conn.Close()
	}()
	bw := bufio.NewWriter(conn)
	fmt.Fprintf(bw, "HTTP/1.1 %s\r\n", resp.Status)
	resp.Header.Del("Content-Length")
	resp.Header.Del("Transfer-Encoding")
	resp.Header.Write(bw)
	fmt.Fprintf(bw, "Content-Length: %d\r\n\r\n", len(body))
	bw.Write(body[:len(body)/2])
	bw.Flush()
}
