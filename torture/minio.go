package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/walship/walship/internal/testserver"
)

// minio is a MinIO server on 127.0.0.1 (installed by
// scripts/install-test-servers) with one bucket, for the proxy kind.
type minio struct {
	p         *proc
	endpoint  string
	bucket    string
	accessKey string
	secretKey string
}

// startMinIO starts the suite's MinIO once, with its data under the
// scratch directory.
func (s *suite) startMinIO() error {
	if s.minio != nil {
		return nil
	}
	bin := filepath.Join(testserver.Dir(), "bin", "minio")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("MinIO is not installed (%v); run scripts/install-test-servers (make torture does)", err)
	}
	dir := filepath.Join(s.work, "minio")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	console, err := freePort()
	if err != nil {
		return err
	}
	m := &minio{
		endpoint:  fmt.Sprintf("http://127.0.0.1:%d", port),
		bucket:    "torture",
		accessKey: "walship-torture",
		secretKey: "walship-torture-secret",
	}
	m.p, err = s.startProc(procSpec{
		name: "minio",
		bin:  bin,
		args: []string{"server", "--quiet", "--address", fmt.Sprintf("127.0.0.1:%d", port),
			"--console-address", fmt.Sprintf("127.0.0.1:%d", console), filepath.Join(dir, "data")},
		env: []string{
			"MINIO_ROOT_USER=" + m.accessKey,
			"MINIO_ROOT_PASSWORD=" + m.secretKey,
			"MINIO_BROWSER=off",
			"MINIO_UPDATE=off",
			"MINIO_CONFIG_DIR=" + filepath.Join(dir, "config"),
			"HOME=" + dir,
		},
		dir: dir,
	})
	if err != nil {
		return err
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
		if m.p.exited() || time.Now().After(deadline) {
			m.stop()
			return fmt.Errorf("MinIO was not ready within 60s%s", m.p.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if _, err := m.sdk().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(m.bucket)}); err != nil {
		m.stop()
		return fmt.Errorf("create bucket %s in MinIO: %w", m.bucket, err)
	}
	s.minio = m
	return nil
}

func (m *minio) stop() { m.p.kill() }

func (m *minio) sdk() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(m.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(m.accessKey, m.secretKey, ""),
	})
}

// target is the replica at prefix of the bucket, reached at endpoint
// (MinIO's own, or a fault proxy's in front of it).
func (m *minio) target(prefix, endpoint string) replicaTarget {
	return replicaTarget{
		url: m.url(prefix, endpoint),
		yaml: []string{
			fmt.Sprintf("url: s3://%s/%s", m.bucket, prefix),
			"endpoint: " + endpoint,
		},
		env: []string{"WALSHIP_ACCESS_KEY_ID=" + m.accessKey, "WALSHIP_SECRET_ACCESS_KEY=" + m.secretKey},
	}
}

// url is the replica URL of prefix at endpoint.
func (m *minio) url(prefix, endpoint string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s", m.bucket, prefix, url.QueryEscape(endpoint))
}

// removePrefix deletes every object under prefix.
func (m *minio) removePrefix(ctx context.Context, prefix string) error {
	c := m.sdk()
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(m.bucket), Prefix: aws.String(prefix + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		if len(page.Contents) == 0 {
			continue
		}
		var ids []types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		if _, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(m.bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
			return err
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
