package nats_test

import (
	"context"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/nats"
	"github.com/walship/walship/storage/storagetest"
)

// TestConformance runs the suite twice against one nats-server: each
// subtest in a bucket of its own (created by the first write), then each in
// its own path of one shared bucket, which also checks that a client sees
// only its own path.
func TestConformance(t *testing.T) {
	srv := testserver.NATS(t)
	var n atomic.Int64

	t.Run("Bucket", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Client {
			u := &url.URL{Scheme: "nats", User: url.UserPassword(srv.User, srv.Password), Host: srv.Host,
				Path: fmt.Sprintf("/conformance-%d", n.Add(1))}
			return open(t, storage.Spec{URL: u})
		})
	})
	t.Run("Path", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Client {
			u := &url.URL{Scheme: "nats", Host: srv.Host, Path: "/shared"}
			return open(t, storage.Spec{URL: u, Keys: map[string]string{
				"username": srv.User,
				"password": srv.Password,
				"path":     fmt.Sprintf("dbs/db-%d", n.Add(1)),
			}})
		})
	})
}

// open opens a client, closed when the test ends.
func open(t testing.TB, spec storage.Spec) *nats.Client {
	t.Helper()
	c, err := nats.Open(context.Background(), spec)
	if err != nil {
		t.Fatalf("open %s: %v", spec.URL.Redacted(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
