package nats_test

import (
	"testing"

	"github.com/walship/walship/internal/e2e"
	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
)

// TestE2E replicates through the walship binary to nats-server, with the
// password taken from the environment through ${VAR} expansion.
func TestE2E(t *testing.T) { e2e.Run(t, e2eReplica(t)) }

// TestE2EOwnership: one writer per replica, through the binary, on
// JetStream's expected last subject sequence.
func TestE2EOwnership(t *testing.T) { e2e.RunOwnership(t, e2eReplica(t)) }

// TestE2EHeal: a replica emptied while walship runs heals itself.
func TestE2EHeal(t *testing.T) { e2e.RunHeal(t, e2eReplica(t)) }

// TestE2EEncryptedNATS: a replica on nats-server encrypted by walship (see
// e2e.RunEncrypted).
func TestE2EEncryptedNATS(t *testing.T) { e2e.RunEncrypted(t, e2eReplica(t)) }

// e2eReplica starts a nats-server and returns an empty destination on it.
func e2eReplica(t *testing.T) e2e.Replica {
	t.Helper()
	srv := testserver.NATS(t)
	return e2e.Replica{
		YAML: "url: " + srv.URL() + "/e2e/app\nuser: " + srv.User + "\npassword: ${WALSHIP_TEST_NATS_PASSWORD}",
		Env:  []string{"WALSHIP_TEST_NATS_PASSWORD=" + srv.Password},
		Client: open(t, storage.Spec{URL: natsURL(srv, false, "e2e/app"), Keys: map[string]string{
			"username": srv.User, "password": srv.Password,
		}}),
	}
}
