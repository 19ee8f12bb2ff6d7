package testserver

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// GCSServer is a running fake-gcs-server, a Google Cloud Storage emulator.
// Requests need no authentication.
type GCSServer struct {
	// Endpoint is the server's base URL, http://127.0.0.1:PORT (https://
	// for FakeGCSTLS): the gs backend's endpoint key.
	Endpoint string
	// Host is 127.0.0.1:PORT, the value for STORAGE_EMULATOR_HOST when
	// Endpoint is http://.
	Host string
	// Dir is the server's filesystem root: objects live below
	// Dir/<bucket>/.
	Dir string

	Process *Process

	client *http.Client
	n      atomic.Int64
}

// FakeGCS starts fake-gcs-server on a free port of 127.0.0.1, over plain
// HTTP, with a filesystem backend in a temporary directory.
func FakeGCS(t testing.TB) *GCSServer {
	t.Helper()
	return startFakeGCS(t, "http")
}

// FakeGCSTLS starts fake-gcs-server like FakeGCS, but over HTTPS with a
// self-signed certificate that the server generates: a client must skip
// certificate verification to reach it.
func FakeGCSTLS(t testing.TB) *GCSServer {
	t.Helper()
	return startFakeGCS(t, "https")
}

func startFakeGCS(t testing.TB, scheme string) *GCSServer {
	t.Helper()
	port := FreePort(t)
	host := Addr(port)
	endpoint := scheme + "://" + host
	dir := filepath.Join(t.TempDir(), "gcs")
	s := &GCSServer{
		Endpoint: endpoint,
		Host:     host,
		Dir:      dir,
		client: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		},
	}
	s.Process = Start(t, Config{
		Name: "fake-gcs-server",
		Path: Bin(t, "fake-gcs-server"),
		Args: []string{
			"-scheme", scheme,
			"-host", "127.0.0.1",
			"-port", fmt.Sprint(port),
			"-external-url", endpoint,
			"-public-host", host,
			"-backend", "filesystem",
			"-filesystem-root", dir,
			"-log-level", "warn",
		},
		Ready: func() error {
			resp, err := s.client.Get(endpoint + "/storage/v1/b")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("list buckets: %s", resp.Status)
			}
			return nil
		},
	})
	t.Cleanup(s.client.CloseIdleConnections)
	return s
}

// NewBucket creates a bucket with a name not used before on this server and
// returns the name.
func (s *GCSServer) NewBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("walship-test-%d", s.n.Add(1))
	s.CreateBucket(t, name)
	return name
}

// CreateBucket creates the named bucket through the JSON API.
func (s *GCSServer) CreateBucket(t testing.TB, name string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name})
	resp, err := s.client.Post(s.Endpoint+"/storage/v1/b?project=walship-test", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("fake-gcs-server: create bucket %s: %v", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("fake-gcs-server: create bucket %s: %s: %s", name, resp.Status, msg)
	}
}
