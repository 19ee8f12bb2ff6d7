package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walship/walship/internal/testserver"
)

// minio is a MinIO server on 127.0.0.1 with one bucket, reached through a
// proxy that counts the requests walship sends it.
type minio struct {
	proc      *proc
	endpoint  string // MinIO itself
	proxy     string // the counting proxy in front of it
	bucket    string
	accessKey string
	secretKey string
	requests  atomic.Int64 // every request through the proxy
	writes    atomic.Int64 // PUTs and POSTs through the proxy
	srv       *http.Server
}

func startMinIO(work string) (*minio, error) {
	bin := filepath.Join(testserver.Dir(), "bin", "minio")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("MinIO is not installed (%v); run scripts/install-test-servers (make bench does)", err)
	}
	dir := filepath.Join(work, "minio")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	console, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &minio{
		endpoint:  fmt.Sprintf("http://127.0.0.1:%d", port),
		bucket:    "bench",
		accessKey: "walship-bench",
		secretKey: "walship-bench-secret",
	}
	m.proc, err = start("minio", 0, dir, []string{
		"MINIO_ROOT_USER=" + m.accessKey,
		"MINIO_ROOT_PASSWORD=" + m.secretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CONFIG_DIR=" + filepath.Join(dir, "config"),
		"HOME=" + dir,
	}, bin, "server", "--quiet", "--address", fmt.Sprintf("127.0.0.1:%d", port),
		"--console-address", fmt.Sprintf("127.0.0.1:%d", console), filepath.Join(dir, "data"))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(m.endpoint + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			m.stop()
			return nil, fmt.Errorf("MinIO was not ready within 60s; see %s", m.proc.log.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.sdk().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(m.bucket)}); err != nil {
		m.stop()
		return nil, fmt.Errorf("create bucket: %w", err)
	}
	if err := m.startProxy(); err != nil {
		m.stop()
		return nil, err
	}
	return m, nil
}

func (m *minio) sdk() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(m.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(m.accessKey, m.secretKey, ""),
	})
}

func (m *minio) startProxy() error {
	target, _ := url.Parse(m.endpoint)
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
	return []string{"AWS_ACCESS_KEY_ID=" + m.accessKey, "AWS_SECRET_ACCESS_KEY=" + m.secretKey}
}

// url is a replica URL for path in the bucket; counted goes through the proxy.
func (m *minio) url(path string, counted bool) string {
	ep := m.endpoint
	if counted {
		ep = m.proxy
	}
	return fmt.Sprintf("s3://%s/%s?endpoint=%s", m.bucket, strings.TrimPrefix(path, "/"), url.QueryEscape(ep))
}

// yaml is a config file's replica block for path.
func (m *minio) yaml(path string, counted bool) string {
	ep := m.endpoint
	if counted {
		ep = m.proxy
	}
	return fmt.Sprintf("url: s3://%s/%s\n        endpoint: %s", m.bucket, path, ep)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
