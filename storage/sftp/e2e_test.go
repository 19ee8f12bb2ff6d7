package sftp

import (
	"fmt"
	"testing"

	"github.com/walship/walship/internal/e2e"
	"github.com/walship/walship/internal/testserver"
)

// TestE2E replicates through the walship binary to OpenSSH, logging in with
// a key file and trusting the server's key given as host-key.
func TestE2E(t *testing.T) { e2e.Run(t, e2eReplica(t)) }

// TestE2EOwnership: one writer per replica, through the binary, on SFTP's
// exclusive rename.
func TestE2EOwnership(t *testing.T) { e2e.RunOwnership(t, e2eReplica(t)) }

// TestE2EHeal: a replica emptied while walship runs heals itself.
func TestE2EHeal(t *testing.T) { e2e.RunHeal(t, e2eReplica(t)) }

// TestE2EEncryptedSFTP: a replica on OpenSSH encrypted by walship (see
// e2e.RunEncrypted).
func TestE2EEncryptedSFTP(t *testing.T) { e2e.RunEncrypted(t, e2eReplica(t)) }

// e2eReplica starts the server of TestE2E and returns its destination, empty.
func e2eReplica(t *testing.T) e2e.Replica {
	t.Helper()
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	return e2e.Replica{
		YAML:   fmt.Sprintf("url: sftp://%s@%s%s\nkey-path: %s\nhost-key: %s", srv.User, srv.Addr(), dir, srv.KeyPath, srv.HostKey),
		Client: openTest(t, srv, dir, nil),
	}
}

// TestE2ELitestream03: Litestream v0.3 replicates over SFTP, logging in with
// a key (it does not check host keys); walship restores its backup and
// replicates beside it.
func TestE2ELitestream03(t *testing.T) {
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	e2e.RunLitestream03(t, e2e.Litestream03{
		V03YAML: fmt.Sprintf("url: sftp://%s@%s%s\nkey-path: %s", srv.User, srv.Addr(), dir, srv.KeyPath),
		Replica: e2e.Replica{
			YAML:   fmt.Sprintf("url: sftp://%s@%s%s\nkey-path: %s\nhost-key: %s", srv.User, srv.Addr(), dir, srv.KeyPath, srv.HostKey),
			Client: openTest(t, srv, dir, nil),
		},
	})
}
