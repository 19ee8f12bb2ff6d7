package filerecord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// localServer is a Server on a local directory, with the primitives of
// OpenSSH's sftp-server: Move is link(2) then unlink(2), which fails when
// the target exists, and Replace is rename(2). Its hooks stand for what
// servers and networks do.
type localServer struct {
	// noReplace makes Replace unsupported, as on WebDAV.
	noReplace bool
	// noReadTime makes Read return no modification time, as a WebDAV GET
	// without Last-Modified; with modTimer, ModTime gives it.
	noReadTime, modTimer bool

	// before, when set, is called before each request with its method and
	// path; an error it returns fails the request, which is not carried
	// out, as when the process stops there.
	before func(method, p string) error

	// lose, when set, is asked after each request carried out whether its
	// answer is lost. With resend, the request is then sent again, as a
	// WebDAV request is; otherwise it fails with errLost and Do runs the
	// step again, as SFTP does on a new connection.
	lose   func() bool
	resend bool
}

// errLost is a request whose answer was lost.
var errLost = errors.New("the answer was lost")

// doAttempts bounds the times Do and Retry run a step whose answer was
// lost.
const doAttempts = 100

func (s *localServer) Do(ctx context.Context, op func(ctx context.Context, f Files) error) error {
	return s.run(ctx, op, s.resend)
}

func (s *localServer) Retry(ctx context.Context, op func(ctx context.Context, f Files) error) error {
	return s.run(ctx, op, false)
}

// run runs op, again after a lost answer; resend makes its files send a
// request again instead.
func (s *localServer) run(ctx context.Context, op func(ctx context.Context, f Files) error, resend bool) error {
	var f Files = &localFiles{s: s, resend: resend}
	if s.modTimer {
		f = modTimeFiles{f.(*localFiles)}
	}
	var err error
	for range doAttempts {
		if err = op(ctx, f); !errors.Is(err, errLost) {
			return err
		}
	}
	return err
}

// open returns records of dir on s that log to log (io.Discard when nil).
func (s *localServer) open(dir string, log io.Writer) *Records {
	if log == nil {
		log = io.Discard
	}
	errorf := func(format string, args ...any) error {
		return fmt.Errorf("replica local: "+format, args...)
	}
	return New(dir, s, errorf, slog.New(slog.NewTextHandler(log, nil)))
}

// localFiles are the files of a localServer.
type localFiles struct {
	s      *localServer
	resend bool
}

// send carries out one request with do, through the server's hooks.
func (f *localFiles) send(method, p string, do func() error) error {
	if f.s.before != nil {
		if err := f.s.before(method, p); err != nil {
			return err
		}
	}
	err := do()
	if f.s.lose == nil || !f.s.lose() {
		return err
	}
	if f.resend {
		return do()
	}
	return errLost
}

func (f *localFiles) Read(_ context.Context, p string) (data []byte, mtime time.Time, err error) {
	err = f.send("read", p, func() error {
		data, err = os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		mtime = fi.ModTime()
		if f.s.noReadTime {
			mtime = time.Time{}
		}
		return nil
	})
	return data, mtime, err
}

func (f *localFiles) Write(_ context.Context, p string, data []byte) error {
	return f.send("write", p, func() error {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, data, 0o644)
	})
}

func (f *localFiles) Move(_ context.Context, from, to string) error {
	return f.send("move", to, func() error {
		if err := os.Link(from, to); err != nil {
			return err
		}
		return os.Remove(from)
	})
}

func (f *localFiles) Replace(_ context.Context, from, to string) error {
	if f.s.noReplace {
		return errors.ErrUnsupported
	}
	return f.send("replace", to, func() error { return os.Rename(from, to) })
}

func (f *localFiles) Remove(_ context.Context, p string) error {
	return f.send("remove", p, func() error {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	})
}

// modTimeFiles are localFiles with a ModTime.
type modTimeFiles struct{ *localFiles }

func (f modTimeFiles) ModTime(_ context.Context, p string) (time.Time, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}
