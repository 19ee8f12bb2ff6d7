package lease

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/azure"
	"github.com/walship/walship/storage/file"
	"github.com/walship/walship/storage/gcs"
	"github.com/walship/walship/storage/nats"
	"github.com/walship/walship/storage/s3"
	"github.com/walship/walship/storage/sftp"
	"github.com/walship/walship/storage/webdav"
)

// The lease is only as safe as the conditional write under it, so every
// test of the lease runs on every backend, each against its real test
// server: a backend is declared once below (TestLeaseOn...), as a function
// that opens a client of a new, empty replica path on a server the test
// started once, and runs the whole suite.

// suite is every lease test that runs on each backend.
var suite = []struct {
	name string
	f    func(t *testing.T, c storage.Client)
}{
	{"Check", testCheck},
	{"AcquireRenew", testAcquireRenew},
	{"ConflictingHolderRefused", testConflictingHolderRefused},
	{"ExpiryOnObserversClock", testExpiryOnObserversClock},
	{"MissingRecordWaitsTTL", testMissingRecordWaitsTTL},
	{"Keep", testKeep},
	{"RestartTakesItsOwnLeaseAfterExpiry", testRestartTakesItsOwnLeaseAfterExpiry},
	{"Release", testRelease},
	{"ReleasedGoesToStandbyFirst", testReleasedGoesToStandbyFirst},
	{"Handover", testHandover},
}

// runSuite runs every lease test on a new replica opened by open.
func runSuite(t *testing.T, open func(t *testing.T) storage.Client) {
	for _, tc := range suite {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, open(t)) })
	}
}

// testCheck: the backend's records are an atomic conditional write, so
// lease mode accepts it.
func testCheck(t *testing.T, c storage.Client) {
	if err := Check(c); err != nil {
		t.Fatalf("lease mode refuses this backend: %v", err)
	}
}

// closeAtEnd closes c when the test ends, if it holds connections.
func closeAtEnd(t *testing.T, c storage.Client) storage.Client {
	if cl, ok := c.(io.Closer); ok {
		t.Cleanup(func() { cl.Close() })
	}
	return c
}

// s3Client returns a client of path in bucket on srv, with extra keys.
func s3Client(t *testing.T, srv *testserver.S3Server, bucket, path string, extra map[string]string) storage.Client {
	t.Helper()
	keys := map[string]string{
		"endpoint":          srv.Endpoint,
		"region":            srv.Region,
		"access-key-id":     srv.AccessKey,
		"secret-access-key": srv.SecretKey,
	}
	for k, v := range extra {
		keys[k] = v
	}
	c, err := s3.Open(context.Background(), storage.Spec{URL: &url.URL{Scheme: "s3", Host: bucket, Path: "/" + path}, Keys: keys})
	if err != nil {
		t.Fatalf("open %s: %v", srv.Name, err)
	}
	return c
}

// minio returns a client of a new bucket on a new MinIO, with extra keys.
func minio(t *testing.T, extra map[string]string) storage.Client {
	t.Helper()
	srv := testserver.MinIO(t)
	return s3Client(t, srv, srv.Bucket(t), "db", extra)
}

// s3Suite runs the suite on srv, each test under a prefix of its own.
func s3Suite(t *testing.T, srv *testserver.S3Server) {
	bucket := srv.Bucket(t)
	var n atomic.Int64
	runSuite(t, func(t *testing.T) storage.Client {
		return s3Client(t, srv, bucket, fmt.Sprintf("lease/%d/db", n.Add(1)), nil)
	})
}

func TestLeaseOnDirectory(t *testing.T) {
	runSuite(t, func(t *testing.T) storage.Client { return file.New(t.TempDir()) })
}

func TestLeaseOnMinIO(t *testing.T) { s3Suite(t, testserver.MinIO(t)) }

func TestLeaseOnVersityGW(t *testing.T) { s3Suite(t, testserver.VersityGW(t)) }

func TestLeaseOnGCS(t *testing.T) {
	srv := testserver.FakeGCS(t)
	runSuite(t, func(t *testing.T) storage.Client {
		u := &url.URL{Scheme: "gs", Host: srv.NewBucket(t), Path: "/lease/db"}
		c, err := gcs.Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"endpoint": srv.Endpoint}})
		if err != nil {
			t.Fatalf("open GCS: %v", err)
		}
		return closeAtEnd(t, c)
	})
}

func TestLeaseOnAzure(t *testing.T) {
	srv := testserver.Azurite(t)
	runSuite(t, func(t *testing.T) storage.Client {
		u := &url.URL{Scheme: "abs", User: url.User(srv.Account), Host: srv.NewContainer(t), Path: "/db"}
		c, err := azure.Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"endpoint": srv.Endpoint, "account-key": srv.Key}})
		if err != nil {
			t.Fatalf("open Azurite: %v", err)
		}
		return closeAtEnd(t, c)
	})
}

func TestLeaseOnSFTP(t *testing.T) {
	srv := testserver.SSHD(t)
	runSuite(t, func(t *testing.T) storage.Client {
		u := &url.URL{Scheme: "sftp", User: url.User(srv.User), Host: srv.Addr(), Path: srv.Dir(t)}
		c, err := sftp.Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"key-path": srv.KeyPath, "host-key": srv.HostKey}})
		if err != nil {
			t.Fatalf("open SFTP: %v", err)
		}
		return closeAtEnd(t, c)
	})
}

func TestLeaseOnWebDAV(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	runSuite(t, func(t *testing.T) storage.Client {
		u, err := url.Parse(srv.URL + srv.NewPath(t))
		if err != nil {
			t.Fatal(err)
		}
		c, err := webdav.Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"user": srv.User, "password": srv.Password}})
		if err != nil {
			t.Fatalf("open WebDAV: %v", err)
		}
		return closeAtEnd(t, c)
	})
}

func TestLeaseOnNATS(t *testing.T) {
	srv := testserver.NATS(t)
	var n atomic.Int64
	runSuite(t, func(t *testing.T) storage.Client {
		u := &url.URL{Scheme: "nats", User: url.UserPassword(srv.User, srv.Password), Host: srv.Host, Path: fmt.Sprintf("/lease-%d", n.Add(1))}
		c, err := nats.Open(context.Background(), storage.Spec{URL: u})
		if err != nil {
			t.Fatalf("open NATS: %v", err)
		}
		return closeAtEnd(t, c)
	})
}

// TestUnconditionalStoreRefused: a store whose records are not written
// atomically cannot hold a lease (S3 with conditional-writes: false, which
// reads then writes): lease mode refuses it and says which setting.
func TestUnconditionalStoreRefused(t *testing.T) {
	err := Check(minio(t, map[string]string{"conditional-writes": "false"}))
	if err == nil || !strings.Contains(err.Error(), "conditional-writes: false") {
		t.Fatalf("MinIO with conditional-writes: false: %v; want a refusal naming the setting", err)
	}
}
