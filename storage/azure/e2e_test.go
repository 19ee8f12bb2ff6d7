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
