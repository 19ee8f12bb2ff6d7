package s3

import (
	"fmt"
	"testing"

	"github.com/walship/walship/internal/e2e"
	"github.com/walship/walship/internal/testserver"
)

// TestE2EMinIO replicates through the walship binary to MinIO, named by a
// URL and the endpoint key, with the credentials in walship's own
// environment variables.
func TestE2EMinIO(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	e2e.Run(t, e2e.Replica{
		YAML: fmt.Sprintf("url: s3://%s/app\nendpoint: %s", bucket, srv.Endpoint),
		Env: []string{
			"WALSHIP_ACCESS_KEY_ID=" + srv.AccessKey,
			"WALSHIP_SECRET_ACCESS_KEY=" + srv.SecretKey,
		},
		Client: openSpec(t, spec(srv, bucket, "app", nil)),
	})
}

// TestE2EVersityGW replicates through the walship binary to versitygw,
// with the replica written as type, bucket and path keys and the
// credentials as config keys, as Litestream's configs often are.
func TestE2EVersityGW(t *testing.T) {
	srv := testserver.VersityGW(t)
	bucket := srv.Bucket(t)
	e2e.Run(t, e2e.Replica{
		YAML: fmt.Sprintf("type: s3\nbucket: %s\npath: backups/app\nendpoint: %s\nregion: %s\naccess-key-id: %s\nsecret-access-key: %s",
			bucket, srv.Endpoint, srv.Region, srv.AccessKey, srv.SecretKey),
		Client: openSpec(t, spec(srv, bucket, "backups/app", nil)),
	})
}

// TestE2EOwnershipMinIO: one writer per replica, through the binary, on
// MinIO's conditional writes.
func TestE2EOwnershipMinIO(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	e2e.RunOwnership(t, e2e.Replica{
		YAML: fmt.Sprintf("url: s3://%s/app\nendpoint: %s", bucket, srv.Endpoint),
		Env: []string{
			"WALSHIP_ACCESS_KEY_ID=" + srv.AccessKey,
			"WALSHIP_SECRET_ACCESS_KEY=" + srv.SecretKey,
		},
		Client: openSpec(t, spec(srv, bucket, "app", nil)),
	})
}

// TestE2EOwnershipVersityGW: the same on versitygw's.
func TestE2EOwnershipVersityGW(t *testing.T) {
	srv := testserver.VersityGW(t)
	bucket := srv.Bucket(t)
	e2e.RunOwnership(t, e2e.Replica{
		YAML: fmt.Sprintf("type: s3\nbucket: %s\npath: backups/app\nendpoint: %s\nregion: %s\naccess-key-id: %s\nsecret-access-key: %s",
			bucket, srv.Endpoint, srv.Region, srv.AccessKey, srv.SecretKey),
		Client: openSpec(t, spec(srv, bucket, "backups/app", nil)),
	})
}
