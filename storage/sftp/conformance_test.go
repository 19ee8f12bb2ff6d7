package sftp

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/storagetest"
)

// TestConformance runs the storage conformance suite against a real OpenSSH
// server; each subtest gets a new directory.
func TestConformance(t *testing.T) {
	srv := testserver.SSHD(t)
	storagetest.RunWith(t, storagetest.Options{TimestampPrecision: time.Second}, func(t *testing.T) storage.Client {
		return openTest(t, srv, srv.Dir(t), nil)
	})
}

// TestConformanceNoPosixRename runs the suite with files replaced as on a
// server without posix-rename@openssh.com (renamed aside first).
func TestConformanceNoPosixRename(t *testing.T) {
	srv := testserver.SSHD(t)
	storagetest.RunWith(t, storagetest.Options{TimestampPrecision: time.Second}, func(t *testing.T) storage.Client {
		c := openTest(t, srv, srv.Dir(t), nil)
		c.noPosixRename = true
		return c
	})
}

// openTest opens a client for dir on srv, logging in with the server's
// client key and trusting its host key; keys adds or overrides settings.
func openTest(t testing.TB, srv *testserver.SSHServer, dir string, keys map[string]string) *Client {
	t.Helper()
	all := map[string]string{"key-path": srv.KeyPath, "host-key": srv.HostKey}
	for k, v := range keys {
		all[k] = v
	}
	u := &url.URL{Scheme: "sftp", User: url.User(srv.User), Host: srv.Addr(), Path: dir}
	c, err := Open(context.Background(), storage.Spec{URL: u, Keys: all})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestConformanceObjects: any file under the replica's directory on the
// server reads back through storage.Objects. The server serves the local
// file system, so objects are put there directly.
func TestConformanceObjects(t *testing.T) {
	srv := testserver.SSHD(t)
	storagetest.RunObjects(t, func(t *testing.T) (storage.Client, storagetest.Put) {
		dir := srv.Dir(t)
		return openTest(t, srv, dir, nil), func(name string, data []byte) error {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			return os.WriteFile(p, data, 0o644)
		}
	})
}
