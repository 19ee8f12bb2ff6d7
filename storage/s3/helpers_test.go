package s3

import (
	"context"
	"net/url"
	"testing"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
)

// spec returns the spec of a replica at s3://bucket/prefix on srv, with
// the server's credentials as config keys, a 5 MiB part size (so ~12 MB
// files are multipart uploads), and extra keys.
func spec(srv *testserver.S3Server, bucket, prefix string, extra map[string]string) storage.Spec {
	keys := map[string]string{
		"endpoint":          srv.Endpoint,
		"region":            srv.Region,
		"access-key-id":     srv.AccessKey,
		"secret-access-key": srv.SecretKey,
		"part-size":         "5MiB",
	}
	for k, v := range extra {
		if v == "" {
			delete(keys, k)
		} else {
			keys[k] = v
		}
	}
	return storage.Spec{URL: &url.URL{Scheme: "s3", Host: bucket, Path: "/" + prefix}, Keys: keys}
}

// openSpec opens a client or fails the test.
func openSpec(t testing.TB, s storage.Spec) *Client {
	t.Helper()
	c, err := Open(context.Background(), s)
	if err != nil {
		t.Fatalf("open %s: %v", s.URL, err)
	}
	return c
}
