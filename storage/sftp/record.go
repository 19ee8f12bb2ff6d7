package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/pkg/sftp"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/filerecord"
)

// recordFiles are the files of one connection, on which storage/filerecord
// keeps records. SFTP (version 3, as OpenSSH speaks it) has no conditional
// write, but it has one exclusive step: a plain rename (SSH_FXP_RENAME),
// which OpenSSH's sftp-server carries out as link(2) then unlink(2), so it
// fails when the target exists and two renames onto one name cannot both
// succeed. A record in place is replaced with posix-rename@openssh.com
// where the server has it, which replaces the target in one step. On a
// file system without hard links, OpenSSH falls back to checking and
// renaming, which is not atomic; such a destination cannot hold records
// safely.
//
// A request cannot be cancelled on its own: the connection is closed when
// a step's context ends (Client.do).
type recordFiles struct {
	c  *Client
	cn *conn
}

// Read reads the file p and its modification time, which SFTP always
// reports.
func (f recordFiles) Read(_ context.Context, p string) ([]byte, time.Time, error) {
	data, fi, err := readSmall(f.cn.sftp, p)
	if err != nil {
		return nil, time.Time{}, err
	}
	return data, fi.ModTime(), nil
}

// Write creates the file p holding data, flushed to disk where the server
// can. It sets no modification time: the server's clock stamps it.
func (f recordFiles) Write(_ context.Context, p string, data []byte) error {
	return writeSmall(f.cn, p, data)
}

// Move renames with a plain rename, which fails when to exists. SFTP
// version 3 has no "file exists" status: OpenSSH answers SSH_FX_FAILURE,
// which it also answers for rarer failures, so Move reports that as
// fs.ErrExist, and storage/filerecord, which looks at to after a refused
// move, tells the two apart.
func (f recordFiles) Move(_ context.Context, from, to string) error {
	err := f.cn.sftp.Rename(from, to)
	var se *sftp.StatusError
	if errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxFailure {
		err = &refusedError{err: err}
	}
	if err != nil {
		return fmt.Errorf("rename %s to %s: %w", from, to, err)
	}
	return nil
}

// Replace renames with posix-rename@openssh.com, which replaces to in one
// step. Without it, storage/filerecord renames the old file aside first.
func (f recordFiles) Replace(_ context.Context, from, to string) error {
	if !f.cn.posixRename || f.c.noPosixRename {
		return errors.ErrUnsupported
	}
	if err := f.cn.sftp.PosixRename(from, to); err != nil {
		return fmt.Errorf("rename %s to %s: %w", from, to, err)
	}
	return nil
}

// Remove removes the file p, if it exists.
func (f recordFiles) Remove(_ context.Context, p string) error {
	if err := f.cn.sftp.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// recordServer runs the steps of storage/filerecord on the client's
// connection. SFTP sends no request twice: when the connection breaks under
// a step, the whole step runs again on a new one, which is what both Do and
// Retry ask.
type recordServer struct{ c *Client }

func (s recordServer) Do(ctx context.Context, op func(ctx context.Context, f filerecord.Files) error) error {
	return s.c.do(ctx, nil, func(ctx context.Context, cn *conn) error {
		return op(ctx, recordFiles{c: s.c, cn: cn})
	})
}

func (s recordServer) Retry(ctx context.Context, op func(ctx context.Context, f filerecord.Files) error) error {
	return s.Do(ctx, op)
}

// refusedError is a rename that OpenSSH refused with SSH_FX_FAILURE: most
// likely, its target exists.
type refusedError struct{ err error }

func (e *refusedError) Error() string        { return e.err.Error() }
func (e *refusedError) Unwrap() error        { return e.err }
func (e *refusedError) Is(target error) bool { return target == fs.ErrExist }

// readSmall reads the file p, which may hold at most
// storage.MaxRecordSize bytes, and returns its attributes.
func readSmall(s *sftp.Client, p string) ([]byte, os.FileInfo, error) {
	f, err := s.Open(p)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("stat %s: %w", p, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, storage.MaxRecordSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", p, err)
	}
	if len(data) > storage.MaxRecordSize {
		return nil, nil, fmt.Errorf("%s holds more than the %d bytes a record may: it was not written by walship", p, storage.MaxRecordSize)
	}
	return data, fi, nil
}

// writeSmall creates the file p (a unique temp name) holding data, flushed
// to disk where the server can.
func writeSmall(cn *conn, p string, data []byte) error {
	s := cn.sftp
	f, err := s.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if errors.Is(err, fs.ErrNotExist) {
		// The replica's first file: its directory does not exist yet.
		if err := s.MkdirAll(path.Dir(p)); err != nil {
			return fmt.Errorf("create directory %s: %w", path.Dir(p), err)
		}
		f, err = s.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	if err := writeAndClose(cn, f, p, data); err != nil {
		_ = s.Remove(p)
		return err
	}
	return nil
}

func writeAndClose(cn *conn, f *sftp.File, p string, data []byte) error {
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if cn.fsync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", p, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", p, err)
	}
	return nil
}
