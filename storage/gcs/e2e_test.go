package gcs_test

import (
	"fmt"
	"testing"

	"github.com/walship/walship/internal/e2e"
	"github.com/walship/walship/internal/testserver"
)

// TestE2E replicates through the walship binary to fake-gcs-server, named by
// the endpoint key of the config file.
func TestE2E(t *testing.T) { e2e.Run(t, e2eReplica(t)) }

// TestE2EEmulatorHost replicates to fake-gcs-server found through the
// standard STORAGE_EMULATOR_HOST variable, with the replica written as
// type, bucket and path keys.
func TestE2EEmulatorHost(t *testing.T) {
	srv := testserver.FakeGCS(t)
	bucket := srv.NewBucket(t)
	e2e.Run(t, e2e.Replica{
		YAML:   fmt.Sprintf("type: gs\nbucket: %s\npath: backups/app", bucket),
		Env:    []string{"STORAGE_EMULATOR_HOST=" + srv.Host},
		Client: open(t, srv, "gs://"+bucket+"/backups/app", nil),
	})
}

// TestE2EOwnership: one writer per replica, through the binary, on GCS's
// generation preconditions.
func TestE2EOwnership(t *testing.T) { e2e.RunOwnership(t, e2eReplica(t)) }

// TestE2EHeal: a replica emptied while walship runs heals itself.
func TestE2EHeal(t *testing.T) { e2e.RunHeal(t, e2eReplica(t)) }

// TestE2EEncryptedGCS: a replica on fake-gcs-server encrypted by walship
// (see e2e.RunEncrypted).
func TestE2EEncryptedGCS(t *testing.T) { e2e.RunEncrypted(t, e2eReplica(t)) }

// e2eReplica starts the server of TestE2E and returns its destination, empty.
func e2eReplica(t *testing.T) e2e.Replica {
	t.Helper()
	srv := testserver.FakeGCS(t)
	bucket := srv.NewBucket(t)
	return e2e.Replica{
		YAML:   fmt.Sprintf("url: gs://%s/app\nendpoint: %s", bucket, srv.Endpoint),
		Client: open(t, srv, "gs://"+bucket+"/app", nil),
	}
}

// TestE2ELitestream03: Litestream v0.3 replicates to fake-gcs-server, found
// through STORAGE_EMULATOR_HOST as both programs find it; walship restores
// its backup and replicates beside it.
func TestE2ELitestream03(t *testing.T) {
	srv := testserver.FakeGCS(t)
	bucket := srv.NewBucket(t)
	e2e.RunLitestream03(t, e2e.Litestream03{
		V03YAML: fmt.Sprintf("url: gcs://%s/app", bucket),
		Replica: e2e.Replica{
			YAML:   fmt.Sprintf("url: gs://%s/app", bucket),
			Env:    []string{"STORAGE_EMULATOR_HOST=" + srv.Host},
			Client: open(t, srv, "gs://"+bucket+"/app", nil),
		},
	})
}
