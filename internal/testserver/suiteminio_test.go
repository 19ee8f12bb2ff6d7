package testserver

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// A suite's MinIO, started from the command PrepareMinIO gives, answers
// with its bucket made, and keeps its data under the suite's directory.
func TestSuiteMinIO(t *testing.T) {
	dir := t.TempDir()
	m, cmd, err := PrepareMinIO(filepath.Join(dir, "minio"), "suite")
	if err != nil {
		t.Fatal(err)
	}
	if m.Bucket != "suite" || m.AccessKey != "walship-suite" || m.SecretKey != "walship-suite-secret" {
		t.Errorf("PrepareMinIO = %+v; want bucket suite, user walship-suite", m)
	}
	if cmd.Dir != filepath.Join(dir, "minio") || cmd.Args[len(cmd.Args)-1] != filepath.Join(dir, "minio", "data") {
		t.Errorf("command %+v does not keep MinIO's data under %s", cmd, filepath.Join(dir, "minio"))
	}
	logf, err := os.Create(filepath.Join(cmd.Dir, "minio.log"))
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(cmd.Path, cmd.Args...)
	c.Env, c.Dir = append(os.Environ(), cmd.Env...), cmd.Dir
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() { syscall.Kill(-c.Process.Pid, syscall.SIGKILL); <-done })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.Ready(ctx, done); err != nil {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("Ready: %v; MinIO's output:\n%s", err, b)
	}
	if _, err := m.SDK().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String("k"), Body: strings.NewReader("v")}); err != nil {
		t.Fatalf("put into the bucket Ready made: %v", err)
	}
	out, err := m.SDK().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	if b, _ := io.ReadAll(out.Body); string(b) != "v" {
		t.Errorf("read back %q, want v", b)
	}
}

// Ready gives up at once when the process has exited, rather than
// waiting out its minute, and says so.
func TestSuiteMinIOReadyExited(t *testing.T) {
	port, err := freePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	m := &SuiteMinIO{Endpoint: "http://" + Addr(port), Bucket: "b"}
	exited := make(chan struct{})
	close(exited)
	start := time.Now()
	err = m.Ready(context.Background(), exited)
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Errorf("Ready of an exited MinIO: %v; want it to say it exited", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("Ready took %s to notice the exit", took)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("interrupted")
	cancel(stop)
	if err := m.Ready(ctx, make(chan struct{})); !errors.Is(err, stop) {
		t.Errorf("Ready with its context ended: %v; want it to end with %v", err, stop)
	}
}

// Without MinIO installed, PrepareMinIO says how to install it.
func TestPrepareMinIONotInstalled(t *testing.T) {
	t.Setenv("WALSHIP_TEST_SERVERS", t.TempDir())
	_, _, err := PrepareMinIO(t.TempDir(), "suite")
	if err == nil || !strings.Contains(err.Error(), "scripts/install-test-servers") {
		t.Errorf("PrepareMinIO without MinIO: %v; want it to name scripts/install-test-servers", err)
	}
}
