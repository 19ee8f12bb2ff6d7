package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/walship/walship/internal/testserver"
)

// minio is a MinIO server on 127.0.0.1 with one bucket, reached through a
// proxy that counts the requests walship sends it.
type minio struct {
	*testserver.SuiteMinIO
	proc     *proc
	proxy    string       // the counting proxy in front of it
	requests atomic.Int64 // every request through the proxy
	writes   atomic.Int64 // PUTs and POSTs through the proxy
	srv      *http.Server
}

func startMinIO(work string) (*minio, error) {
	srv, cmd, err := testserver.PrepareMinIO(filepath.Join(work, "minio"), "bench")
	if err != nil {
		return nil, err
	}
	m := &minio{SuiteMinIO: srv}
	if m.proc, err = start("minio", 0, cmd.Dir, cmd.Env, cmd.Path, cmd.Args...); err != nil {
		return nil, err
	}
	if err := m.Ready(context.Background(), m.proc.done); err != nil {
		m.stop()
		return nil, fmt.Errorf("%w; see %s", err, m.proc.log.Name())
	}
	if err := m.startProxy(); err != nil {
		m.stop()
		return nil, err
	}
	return m, nil
}

func (m *minio) startProxy() error {
	target, _ := url.Parse(m.Endpoint)
	rp := httputil.NewSingleHostReverseProxy(target)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	m.proxy = "http://" + l.Addr().String()
	m.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.requests.Add(1)
		if r.Method == http.MethodPut || r.Method == http.MethodPost {
			m.writes.Add(1)
		}
		rp.ServeHTTP(w, r)
	})}
	go m.srv.Serve(l)
	return nil
}

func (m *minio) stop() {
	if m.srv != nil {
		m.srv.Close()
	}
	m.proc.stop(syscall.SIGTERM, 10*time.Second)
}

// env is the environment walship needs to reach the server.
func (m *minio) env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + m.AccessKey, "AWS_SECRET_ACCESS_KEY=" + m.SecretKey}
}

// url is a replica URL for path in the bucket; counted goes through the proxy.
func (m *minio) url(path string, counted bool) string {
	ep := m.Endpoint
	if counted {
		ep = m.proxy
	}
	return fmt.Sprintf("s3://%s/%s?endpoint=%s", m.Bucket, strings.TrimPrefix(path, "/"), url.QueryEscape(ep))
}

// yaml is a config file's replica block for path.
func (m *minio) yaml(path string, counted bool) string {
	ep := m.Endpoint
	if counted {
		ep = m.proxy
	}
	return fmt.Sprintf("url: s3://%s/%s\n        endpoint: %s", m.Bucket, path, ep)
}
