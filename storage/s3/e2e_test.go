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
func TestE2EMinIO(t *testing.T) { e2e.Run(t, minioReplica(t)) }

// TestE2EVersityGW replicates through the walship binary to versitygw,
// with the replica written as type, bucket and path keys and the
// credentials as config keys, as Litestream's configs often are.
func TestE2EVersityGW(t *testing.T) { e2e.Run(t, versityReplica(t)) }

// TestE2EOwnershipMinIO: one writer per replica, through the binary, on
// MinIO's conditional writes.
func TestE2EOwnershipMinIO(t *testing.T) { e2e.RunOwnership(t, minioReplica(t)) }

// TestE2EOwnershipVersityGW: the same on versitygw's.
func TestE2EOwnershipVersityGW(t *testing.T) { e2e.RunOwnership(t, versityReplica(t)) }

// TestE2EEncryptedMinIO: a replica on MinIO encrypted by walship (see
// e2e.RunEncrypted).
func TestE2EEncryptedMinIO(t *testing.T) { e2e.RunEncrypted(t, minioReplica(t)) }

// TestE2EExecMinIO: replicate -exec and restore on first boot on MinIO
// (see e2e.RunExec).
func TestE2EExecMinIO(t *testing.T) { e2e.RunExec(t, minioReplica(t)) }

// TestE2EHealMinIO: a replica emptied while walship runs heals itself.
func TestE2EHealMinIO(t *testing.T) { e2e.RunHeal(t, minioReplica(t)) }

// TestE2EFollowMinIO: a read replica of a MinIO replica (e2e.RunFollow).
func TestE2EFollowMinIO(t *testing.T) { e2e.RunFollow(t, minioReplica(t)) }

// minioReplica starts the server of TestE2EMinIO and returns an empty
// destination on it.
func minioReplica(t *testing.T) e2e.Replica {
	t.Helper()
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	return e2e.Replica{
		YAML: fmt.Sprintf("url: s3://%s/app\nendpoint: %s", bucket, srv.Endpoint),
		Env: []string{
			"WALSHIP_ACCESS_KEY_ID=" + srv.AccessKey,
			"WALSHIP_SECRET_ACCESS_KEY=" + srv.SecretKey,
		},
		Client: openSpec(t, spec(srv, bucket, "app", nil)),
	}
}

// versityReplica starts the server of TestE2EVersityGW and returns an empty
// destination on it.
func versityReplica(t *testing.T) e2e.Replica {
	t.Helper()
	srv := testserver.VersityGW(t)
	bucket := srv.Bucket(t)
	return e2e.Replica{
		YAML: fmt.Sprintf("type: s3\nbucket: %s\npath: backups/app\nendpoint: %s\nregion: %s\naccess-key-id: %s\nsecret-access-key: %s",
			bucket, srv.Endpoint, srv.Region, srv.AccessKey, srv.SecretKey),
		Client: openSpec(t, spec(srv, bucket, "backups/app", nil)),
	}
}

// TestE2ELitestreamTakeoverMinIO: walship takes over a replica on MinIO
// that Litestream 0.5 wrote (its staging directory deleted first), and
// restores every TXID of it exactly, Litestream's and its own.
func TestE2ELitestreamTakeoverMinIO(t *testing.T) {
	e2e.RunLitestreamTakeover(t, interopReplica(t), true)
}

// TestE2ELitestreamRestoreMinIO: Litestream 0.5 restores a replica on
// MinIO that walship writes with litestream-compatible, at the latest
// state, at TXIDs and at moments.
func TestE2ELitestreamRestoreMinIO(t *testing.T) { e2e.RunLitestreamRestore(t, interopReplica(t)) }

// interopReplica starts MinIO and returns an empty destination on it whose
// keys Litestream reads as walship does.
func interopReplica(t *testing.T) e2e.Replica {
	t.Helper()
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	return e2e.Replica{
		YAML: fmt.Sprintf("url: s3://%s/app\nendpoint: %s\nregion: %s\naccess-key-id: %s\nsecret-access-key: %s",
			bucket, srv.Endpoint, srv.Region, srv.AccessKey, srv.SecretKey),
		Client: openSpec(t, spec(srv, bucket, "app", nil)),
	}
}

// TestE2ELitestream03MinIO: Litestream v0.3 replicates to MinIO (path-style,
// its credentials in LITESTREAM_ACCESS_KEY_ID and
// LITESTREAM_SECRET_ACCESS_KEY, which walship reads too); walship restores
// its backup and replicates beside it.
func TestE2ELitestream03MinIO(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	e2e.RunLitestream03(t, e2e.Litestream03{
		V03YAML: fmt.Sprintf("url: s3://%s/app\nendpoint: %s\nregion: %s\nforce-path-style: true", bucket, srv.Endpoint, srv.Region),
		Replica: e2e.Replica{
			YAML: fmt.Sprintf("url: s3://%s/app\nendpoint: %s", bucket, srv.Endpoint),
			Env: []string{
				"LITESTREAM_ACCESS_KEY_ID=" + srv.AccessKey,
				"LITESTREAM_SECRET_ACCESS_KEY=" + srv.SecretKey,
			},
			Client: openSpec(t, spec(srv, bucket, "app", nil)),
		},
	})
}

// TestE2EStandbyMinIO: failover between two nodes through MinIO (see
// e2e.RunStandby); WALSHIP_STANDBY_CYCLES=20 for the long run.
func TestE2EStandbyMinIO(t *testing.T) { e2e.RunStandby(t, minioReplica(t), e2e.StandbyCycles(3)) }
