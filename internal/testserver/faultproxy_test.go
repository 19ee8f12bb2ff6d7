package testserver

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The proxy injects every kind of fault, and each looks to a client as it
// should. The server behind it is a stand-in: this tests the proxy alone.
func TestFaultProxy(t *testing.T) {
	body := strings.Repeat("0123456789", 1000)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	defer backend.Close()
	p := NewFaultProxy(t, backend.URL, 1)
	p.maxDelay = 1 // the delay itself is not what is tested
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	seen := map[string]int{}
	for range 200 {
		resp, err := client.Get(p.URL + "/x")
		if err != nil {
			seen["error"]++
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == 503 && strings.Contains(string(b), "<Code>SlowDown</Code>"):
			seen["503"]++
		case resp.StatusCode == 500 && strings.Contains(string(b), "<Code>InternalError</Code>"):
			seen["500"]++
		case resp.StatusCode == 200 && errors.Is(err, io.ErrUnexpectedEOF) || err != nil && len(b) < len(body):
			seen["truncated"]++
		case resp.StatusCode == 200 && err == nil && string(b) == body:
			seen["ok"]++
		default:
			t.Fatalf("unexpected answer: %d, %d bytes, %v", resp.StatusCode, len(b), err)
		}
	}
	for f := Fault(0); f < NumFaults; f++ {
		if p.Count(f) == 0 {
			t.Errorf("no request got %s in 200", f)
		}
	}
	if seen["error"] != int(p.Count(FaultResetBefore)) || seen["truncated"] != int(p.Count(FaultResetDuring)) ||
		seen["503"] != int(p.Count(FaultSlowDown)) || seen["500"] != int(p.Count(FaultInternal)) || seen["ok"] != int(p.Count(FaultDelay)) {
		t.Fatalf("the client saw %v; the proxy reports %s", seen, p.Summary())
	}
}
