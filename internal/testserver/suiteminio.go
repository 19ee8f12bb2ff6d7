package testserver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// SuiteMinIO is MinIO outside a test: the bench and torture suites'
// server, with one bucket. The suite runs the process itself, as one of
// its children (bench keeps them in process groups it signals, torture
// kills them all when interrupted), so starting MinIO is three steps:
// PrepareMinIO says what to run, the suite starts it, and Ready waits for
// it. MinIO is started with the same command line and environment as
// MinIO(t) starts it for a test.
type SuiteMinIO struct {
	Endpoint  string // http://127.0.0.1:PORT
	Bucket    string
	AccessKey string
	SecretKey string
}

// Command is a server's command line, for a caller that runs the process
// itself.
type Command struct {
	Path string
	Args []string
	Env  []string // added to the caller's environment
	Dir  string   // the server's own directory: for its log, and its working directory
}

// PrepareMinIO finds MinIO (installed by scripts/install-test-servers),
// makes its directory dir, which holds its data, configuration, home and
// log, and picks its ports. name names the bucket and the root user
// ("walship-" + name).
func PrepareMinIO(dir, name string) (*SuiteMinIO, Command, error) {
	bin := filepath.Join(Dir(), "bin", "minio")
	if _, err := os.Stat(bin); err != nil {
		return nil, Command{}, fmt.Errorf("MinIO is not installed (%v); run scripts/install-test-servers (make bench and make torture do)", err)
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, Command{}, fmt.Errorf("MinIO's data directory: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, Command{}, err
	}
	console, err := freePort()
	if err != nil {
		return nil, Command{}, err
	}
	m := &SuiteMinIO{
		Endpoint:  "http://" + Addr(port),
		Bucket:    name,
		AccessKey: "walship-" + name,
		SecretKey: "walship-" + name + "-secret",
	}
	return m, Command{
		Path: bin,
		Args: minioArgs(port, console, data),
		Env:  minioEnv(m.AccessKey, m.SecretKey, filepath.Join(dir, "config"), dir),
		Dir:  dir,
	}, nil
}

// minioReadyWithin bounds the wait for a MinIO to answer, as Start's
// default bounds a test's.
const minioReadyWithin = 60 * time.Second

// Ready waits until the server answers its health check, then creates
// the bucket. exited is closed when the process exits, which ends the
// wait at once. The caller stops the process if Ready fails, and adds
// where its log is to the error.
func (m *SuiteMinIO) Ready(ctx context.Context, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(minioReadyWithin)
	for {
		err := minioLive(client, m.Endpoint)
		if err == nil {
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("MinIO exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("MinIO was not ready: %w", context.Cause(ctx))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("MinIO was not ready within %s: %v", minioReadyWithin, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := m.SDK().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(m.Bucket)}); err != nil {
		return fmt.Errorf("create bucket %s in MinIO: %w", m.Bucket, err)
	}
	return nil
}

// SDK is a raw S3 SDK client of the server with the root user's
// credentials.
func (m *SuiteMinIO) SDK() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(m.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, ""),
	})
}

// minioArgs is MinIO's command line for a server on 127.0.0.1:port with
// its console on another port, flags (such as --certs-dir) and then its
// data directory.
func minioArgs(port, console int, data string, flags ...string) []string {
	args := []string{"server", "--quiet", "--address", Addr(port), "--console-address", Addr(console)}
	return append(append(args, flags...), data)
}

// minioEnv is the environment of a MinIO whose root user is user, with no
// browser and no update check, and its own state under config and home
// rather than the caller's home directory.
func minioEnv(user, secret, config, home string) []string {
	return []string{
		"MINIO_ROOT_USER=" + user,
		"MINIO_ROOT_PASSWORD=" + secret,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CONFIG_DIR=" + config,
		"HOME=" + home,
	}
}

// minioLive is MinIO's health check.
func minioLive(client *http.Client, endpoint string) error {
	resp, err := client.Get(endpoint + "/minio/health/live")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check: %s", resp.Status)
	}
	return nil
}

// freePort is FreePort outside a test.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
