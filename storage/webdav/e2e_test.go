package webdav_test

import (
	"fmt"
	"testing"

	"github.com/walship/walship/internal/e2e"
	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage/webdav"
)

// TestE2E replicates through the walship binary to rclone serve webdav, the
// user in the config file and the password in the environment as an
// operator would set them.
func TestE2E(t *testing.T) { e2e.Run(t, e2eReplica(t)) }

// TestE2EOwnership: one writer per replica, through the binary, on WebDAV's
// MOVE without overwrite.
func TestE2EOwnership(t *testing.T) { e2e.RunOwnership(t, e2eReplica(t)) }

// TestE2EHeal: a replica emptied while walship runs heals itself.
func TestE2EHeal(t *testing.T) { e2e.RunHeal(t, e2eReplica(t)) }

// TestE2EEncryptedWebDAV: a replica on rclone's WebDAV server encrypted by
// walship (see e2e.RunEncrypted).
func TestE2EEncryptedWebDAV(t *testing.T) { e2e.RunEncrypted(t, e2eReplica(t)) }

// e2eReplica starts the server of TestE2E and returns its destination, empty.
func e2eReplica(t *testing.T) e2e.Replica {
	t.Helper()
	srv := testserver.RcloneWebDAV(t)
	p := srv.NewPath(t)
	return e2e.Replica{
		YAML:   fmt.Sprintf("url: %s%s\nuser: %s", srv.URL, p, srv.User),
		Env:    []string{webdav.EnvPassword + "=" + srv.Password},
		Client: open(t, srv, p, nil),
	}
}
