package webdav_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/storagetest"
	"github.com/walship/walship/storage/webdav"
)

// open returns a client for path p on srv, with keys added to the server's
// credentials.
func open(t testing.TB, srv *testserver.WebDAVServer, p string, keys map[string]string) *webdav.Client {
	t.Helper()
	u, err := url.Parse(srv.URL + p)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{"user": srv.User, "password": srv.Password}
	for k, v := range keys {
		all[k] = v
	}
	c, err := webdav.Open(context.Background(), storage.Spec{URL: u, Keys: all, Transfers: storage.NewTransfers(4, 32<<20)})
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	return c
}

func TestConformance(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	storagetest.RunWith(t, storagetest.Options{TimestampPrecision: time.Second}, func(t *testing.T) storage.Client {
		return open(t, srv, srv.NewPath(t), nil)
	})
}

// TestConformanceTLS runs the suite over https, trusting the server's
// self-signed certificate through ca-file.
func TestConformanceTLS(t *testing.T) {
	srv := testserver.RcloneWebDAVS(t)
	storagetest.RunWith(t, storagetest.Options{TimestampPrecision: time.Second}, func(t *testing.T) storage.Client {
		return open(t, srv, srv.NewPath(t), map[string]string{"ca-file": srv.CAFile})
	})
}
