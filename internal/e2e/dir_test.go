package e2e

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
	"github.com/walship/walship/storage/s3"
)

// TestDirectoryFile: RunDirectory on a directory replica.
func TestDirectoryFile(t *testing.T) {
	base := filepath.Join(t.TempDir(), "replica")
	RunDirectory(t, DirReplica{
		YAML:     "url: file://" + base,
		ClientOf: func(rel string) storage.Client { return file.New(filepath.Join(base, rel)) },
	})
}

// TestDirectoryMinIO: RunDirectory on S3 (MinIO), each database under
// its own prefix of one bucket.
func TestDirectoryMinIO(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	RunDirectory(t, DirReplica{
		YAML: fmt.Sprintf("url: s3://%s/tenants\nendpoint: %s", bucket, srv.Endpoint),
		Env:  []string{"WALSHIP_ACCESS_KEY_ID=" + srv.AccessKey, "WALSHIP_SECRET_ACCESS_KEY=" + srv.SecretKey},
		ClientOf: func(rel string) storage.Client {
			c, err := s3.Open(context.Background(), storage.Spec{URL: &url.URL{Scheme: "s3", Host: bucket, Path: "/tenants/" + rel}, Keys: map[string]string{
				"endpoint": srv.Endpoint, "access-key-id": srv.AccessKey, "secret-access-key": srv.SecretKey,
			}})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
	})
}
