package sftp

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"testing"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/filerecord/filerecordtest"
)

// TestRecords runs storage/filerecord's suite on OpenSSH: each client on a
// connection of its own, served by its own sftp-server process; replacing
// records with posix-rename@openssh.com and, as on a server without it, by
// renaming the old record aside first.
func TestRecords(t *testing.T) {
	srv := testserver.SSHD(t)
	for _, tc := range []struct {
		name        string
		posixRename bool
	}{{"PosixRename", true}, {"NoPosixRename", false}} {
		t.Run(tc.name, func(t *testing.T) {
			filerecordtest.Run(t, func(t *testing.T) filerecordtest.Dir {
				dir := srv.Dir(t)
				open := func() storage.Records {
					c := openTest(t, srv, dir, nil)
					c.noPosixRename = !tc.posixRename
					return c
				}
				return filerecordtest.Dir{Path: dir, Open: open}
			})
		})
	}
}

// TestRecordPlainRenameExclusive checks the primitive records rely on: on
// OpenSSH a plain SFTP rename onto an existing file fails, as a Move that
// found its target, and leaves it.
func TestRecordPlainRenameExclusive(t *testing.T) {
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	c := openTest(t, srv, dir, nil)
	os.WriteFile(filepath.Join(dir, "a"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(dir, "b"), []byte("b"), 0o644)
	err := c.do(context.Background(), nil, func(ctx context.Context, cn *conn) error {
		return recordFiles{c: c, cn: cn}.Move(ctx, path.Join(dir, "b"), path.Join(dir, "a"))
	})
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("a plain rename onto an existing file: %v; want an error wrapping fs.ErrExist", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "a")); string(got) != "a" {
		t.Fatalf("a refused rename changed the target to %q", got)
	}
}
