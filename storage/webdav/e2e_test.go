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
func TestE2E(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	p := srv.NewPath(t)
	e2e.Run(t, e2e.Replica{
		YAML:   fmt.Sprintf("url: %s%s\nuser: %s", srv.URL, p, srv.User),
		Env:    []string{webdav.EnvPassword + "=" + srv.Password},
		Client: open(t, srv, p, nil),
	})
}

// TestE2EOwnership: one writer per replica, through the binary, on WebDAV's
// MOVE without overwrite.
func TestE2EOwnership(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	p := srv.NewPath(t)
	e2e.RunOwnership(t, e2e.Replica{
		YAML:   fmt.Sprintf("url: %s%s\nuser: %s", srv.URL, p, srv.User),
		Env:    []string{webdav.EnvPassword + "=" + srv.Password},
		Client: open(t, srv, p, nil),
	})
}
