package azure_test

import (
	"fmt"
	"testing"

	"github.com/walship/walship/internal/e2e"
	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage/azure"
)

// TestE2E replicates through the walship binary to Azurite, with the
// account key in the environment as an operator would set it.
func TestE2E(t *testing.T) { e2e.Run(t, e2eReplica(t)) }

// TestE2EOwnership: one writer per replica, through the binary, on Azure's
// ETag conditions.
func TestE2EOwnership(t *testing.T) { e2e.RunOwnership(t, e2eReplica(t)) }

// TestE2EHeal: a replica emptied while walship runs heals itself.
func TestE2EHeal(t *testing.T) { e2e.RunHeal(t, e2eReplica(t)) }

// TestE2EEncryptedAzure: a replica on Azurite encrypted by walship (see
// e2e.RunEncrypted).
func TestE2EEncryptedAzure(t *testing.T) { e2e.RunEncrypted(t, e2eReplica(t)) }

// e2eReplica starts the server of TestE2E and returns its destination, empty.
func e2eReplica(t *testing.T) e2e.Replica {
	t.Helper()
	srv := testserver.Azurite(t)
	name := srv.NewContainer(t)
	return e2e.Replica{
		YAML:   fmt.Sprintf("url: abs://%s@%s/app\nendpoint: %s", srv.Account, name, srv.Endpoint),
		Env:    []string{azure.EnvAccountKey + "=" + srv.Key},
		Client: open(t, srv, name, "app", nil),
	}
}

// TestE2ELitestream03: Litestream v0.3 replicates to Azurite, with the
// account key in LITESTREAM_AZURE_ACCOUNT_KEY, which walship reads too;
// walship restores its backup and replicates beside it.
func TestE2ELitestream03(t *testing.T) {
	srv := testserver.Azurite(t)
	name := srv.NewContainer(t)
	e2e.RunLitestream03(t, e2e.Litestream03{
		V03YAML: fmt.Sprintf("url: abs://%s@%s/app\nendpoint: %s", srv.Account, name, srv.Endpoint),
		Replica: e2e.Replica{
			YAML:   fmt.Sprintf("url: abs://%s@%s/app\nendpoint: %s", srv.Account, name, srv.Endpoint),
			Env:    []string{"LITESTREAM_AZURE_ACCOUNT_KEY=" + srv.Key},
			Client: open(t, srv, name, "app", nil),
		},
	})
}
