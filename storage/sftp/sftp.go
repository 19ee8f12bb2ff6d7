// Package sftp implements a replica on an SSH server, over SFTP. The layout
// is Litestream 0.5's, so each tool reads the other's replicas:
//
//	<path>/ltx/<level>/<minTXID>-<maxTXID>.ltx
//
// A file's modification time is its LTX header timestamp. SFTP (version 3,
// as OpenSSH speaks it) keeps modification times in whole seconds, so
// LTXFiles reports CreatedAt truncated to the second.
//
// Files are uploaded to a temporary name in the same directory,
// ".<name>.tmp-<unix time>-<random>", given their modification time, flushed
// with fsync@openssh.com where the server has it, then renamed into place
// with posix-rename@openssh.com, which replaces an existing file atomically.
// Readers see either a complete file or none. On a server without that
// extension, an existing file is first renamed aside to ".<name>.old", the
// new one renamed into place, and the old one removed: a complete file is
// never deleted before its replacement has its name. If the process dies
// between the renames, the next listing renames the old file back (a plain
// rename never replaces a file, so it cannot undo a newer one). Names
// starting with "." are never listed.
//
// The server's host key is always checked: against the host-key setting
// when it is set, otherwise against known_hosts (~/.ssh/known_hosts and
// /etc/ssh/ssh_known_hosts, or the known-hosts setting). An unknown server is
// refused with an error that shows its key and how to trust it.
//
// A Client holds one SSH connection, opened on first use and reopened after
// it breaks; operations on it run concurrently, and those that fail because
// the connection broke are retried on a new one.
package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"github.com/superfly/ltx"
	"golang.org/x/crypto/ssh"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/filerecord"
)

// Type is the value returned by Client.Type.
const Type = "sftp"

// DefaultPort is the SSH port used when the destination names none.
const DefaultPort = 22

const (
	// copyBufferSize is the size of the chunks uploads are written in; with
	// concurrent writes, one chunk is in flight as SFTP packets at a time.
	copyBufferSize = 1 << 20
	// uploadMemory is what an upload holds: its buffer and the packets in
	// flight.
	uploadMemory = 2 * copyBufferSize
	// readChunkSize bounds one read request, and so the packets a
	// download has in flight.
	readChunkSize = 1 << 20
	// deleteConcurrency is how many removals are in flight at once.
	deleteConcurrency = 16
	// asideSuffix ends the name a replaced file is renamed to, hidden,
	// until its replacement is in place, on servers without
	// posix-rename@openssh.com: ".<name>.old".
	asideSuffix = ".old"
)

var _ storage.Client = (*Client)(nil)

// Client is a replica on an SFTP server. It is safe for concurrent use.
type Client struct {
	// Records are kept on the files of the replica's path, beside ltx/
	// (see record.go).
	*filerecord.Records

	cfg       *config
	desc      string
	hostKeys  hostKeys
	signers   []ssh.Signer // private keys to log in with
	keyDesc   string       // which keys, for messages
	agentSock string       // SSH_AUTH_SOCK at Open, "" for none
	transfers *storage.Transfers
	log       *slog.Logger

	retry             storage.RetryPolicy
	dialTimeout       time.Duration
	keepaliveInterval time.Duration
	keepaliveTimeout  time.Duration
	cancelGrace       time.Duration

	// Test hooks: noPosixRename makes uploads replace files as on a server
	// without posix-rename@openssh.com; betweenRenames, when set, is called
	// there once the existing file is renamed aside, before the new one
	// takes its name, and an error it returns stops the upload there, as a
	// kill would.
	noPosixRename  bool
	betweenRenames func(aside string) error

	dialing chan struct{} // held while dialling
	mu      sync.Mutex
	conn    *conn // nil until connected, and after a connection breaks
	closed  bool
}

// Open returns a client for the destination of spec:
// sftp://user[:password]@host[:port]/path, or the keys host, user,
// password, path; plus key-path (a private key file), host-key (the
// server's public key), known-hosts (a known_hosts file) and
// concurrent-writes. It reads the key files but does not connect: the first
// operation does.
func Open(ctx context.Context, spec storage.Spec) (*Client, error) {
	cfg, err := parseConfig(spec)
	if err != nil {
		return nil, fmt.Errorf("sftp replica: %w", err)
	}
	c := &Client{
		cfg:               cfg,
		desc:              cfg.String(),
		transfers:         spec.Transfers,
		log:               spec.Log(),
		retry:             storage.DefaultRetry,
		dialTimeout:       dialTimeout,
		keepaliveInterval: keepaliveInterval,
		keepaliveTimeout:  keepaliveTimeout,
		cancelGrace:       cancelGrace,
		dialing:           make(chan struct{}, 1),
	}
	c.Records = filerecord.New(cfg.path, recordServer{c}, c.errorf, c.log.With("destination", c.desc))

	if cfg.hostKey != "" {
		if c.hostKeys.keys, c.hostKeys.fingerprints, err = parseHostKeys(cfg.hostKey); err != nil {
			return nil, fmt.Errorf("sftp replica: %w", err)
		}
	} else if cfg.knownHosts != "" {
		c.hostKeys.knownHosts = []string{expandHome(cfg.knownHosts)}
		c.hostKeys.explicit = true
	} else {
		c.hostKeys.knownHosts = defaultKnownHosts()
	}

	if c.signers, err = loadSigners(cfg.keyPath); err != nil {
		return nil, fmt.Errorf("sftp replica: %w", err)
	}
	c.keyDesc = "the default keys in ~/.ssh"
	if cfg.keyPath != "" {
		c.keyDesc = "key " + cfg.keyPath
	}
	c.agentSock = os.Getenv("SSH_AUTH_SOCK")
	if len(c.signers) == 0 && c.agentSock == "" && cfg.password == "" {
		return nil, errors.New("sftp replica: no credentials to log in with: set key-path: to a private key file, or a password (password: or sftp://USER:PASSWORD@HOST/PATH), or run ssh-agent with SSH_AUTH_SOCK set")
	}
	return c, nil
}

// Type returns "sftp".
func (c *Client) Type() string { return Type }

// String returns sftp://user@host:port/path; never the password.
func (c *Client) String() string { return c.desc }

// GoString is String, so that %#v cannot print the password either.
func (c *Client) GoString() string { return c.desc }

// Close closes the connection. The client cannot be used afterwards.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	cn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if cn != nil {
		cn.shutdown()
	}
	return nil
}

// LevelDir returns the directory of one level on the server: absolute, or
// relative to the login directory.
func (c *Client) LevelDir(level int) string {
	return path.Join(c.cfg.path, "ltx", strconv.Itoa(level))
}

// LTXFilePath returns the path of one LTX file on the server.
func (c *Client) LTXFilePath(level int, minTXID, maxTXID ltx.TXID) string {
	return path.Join(c.LevelDir(level), ltx.FormatFilename(minTXID, maxTXID))
}

// errorf prefixes an error with the replica description.
func (c *Client) errorf(format string, args ...any) error {
	return fmt.Errorf("replica %s: "+format, append([]any{c.desc}, args...)...)
}

// LTXFiles lists the files of one level, sorted by MinTXID then MaxTXID.
// CreatedAt is the file's modification time, in whole seconds, in UTC. A
// missing level directory is an empty list. Temp files left for a day by
// interrupted uploads are removed on the way, and a file an interrupted
// replacement left aside is renamed back (or removed, if its replacement
// is in place).
func (c *Client) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("list level %d: %w", level, err)
	}
	dir := c.LevelDir(level)
	var infos []*ltx.FileInfo
	err := c.do(ctx, nil, func(ctx context.Context, cn *conn) error {
		entries, err := cn.sftp.ReadDirContext(ctx, dir)
		if errors.Is(err, fs.ErrNotExist) {
			infos = []*ltx.FileInfo{}
			return nil
		} else if err != nil {
			return fmt.Errorf("read directory %s: %w", dir, err)
		}
		infos = make([]*ltx.FileInfo, 0, len(entries))
		listed := make(map[string]bool, len(entries))
		for _, e := range entries {
			listed[e.Name()] = e.Mode().IsRegular()
		}
		for _, e := range entries {
			name := e.Name()
			if storage.IsTempName(name) && storage.IsStaleTemp(name, time.Now()) {
				if err := cn.sftp.Remove(path.Join(dir, name)); err == nil {
					c.log.Info("removed a temp file left by an interrupted upload", "destination", c.desc, "file", path.Join(dir, name))
				}
			}
			if final, ok := asideOf(name); ok && e.Mode().IsRegular() {
				if !c.recoverAside(cn, dir, name, final, listed[final]) {
					continue
				}
				// Listed under its own name from now on.
				name = final
			} else if strings.HasPrefix(name, ".") || !e.Mode().IsRegular() {
				continue
			}
			minTXID, maxTXID, ok := storage.ParseFileName(name)
			if !ok {
				continue
			}
			infos = append(infos, &ltx.FileInfo{
				Level:     level,
				MinTXID:   minTXID,
				MaxTXID:   maxTXID,
				Size:      e.Size(),
				CreatedAt: e.ModTime().UTC(),
			})
		}
		return nil
	})
	if err != nil {
		return nil, c.errorf("list level %d: %w", level, err)
	}
	storage.SortFiles(infos)
	return infos, nil
}

// OpenLTXFile opens a file for reading from offset. A size of zero reads to
// the end of the file; otherwise at most size bytes are returned. A missing
// file is an error wrapping storage.ErrNotFound. The reader holds a transfer
// slot until it is closed, and stops when ctx ends.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	if offset < 0 || size < 0 {
		return nil, c.errorf("open %s: invalid offset %d or size %d", desc, offset, size)
	}
	release, err := c.transfers.Acquire(ctx, readChunkSize)
	if err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	r := &reader{c: c, ctx: ctx, desc: desc, path: c.LTXFilePath(level, minTXID, maxTXID), offset: offset, remaining: size, limited: size > 0, release: release}
	if err := r.open(); err != nil {
		release()
		return nil, c.errorf("open %s: %w", desc, err)
	}
	return r, nil
}

// reader reads a file on the server. If the connection breaks, it reopens
// the file on a new one and carries on from where it was.
type reader struct {
	c       *Client
	ctx     context.Context
	desc    string
	path    string
	release func()

	mu        sync.Mutex
	cn        *conn
	f         *sftp.File
	offset    int64 // of the next byte to read
	remaining int64 // bytes left to read, when limited
	limited   bool
	closed    bool
}

// open opens the file at r.offset, on the current or a new connection.
func (r *reader) open() error {
	return r.c.do(r.ctx, nil, func(ctx context.Context, cn *conn) error {
		f, err := cn.sftp.Open(r.path)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s does not exist", storage.ErrNotFound, r.path)
		} else if err != nil {
			return fmt.Errorf("open %s: %w", r.path, err)
		}
		if _, err := f.Seek(r.offset, io.SeekStart); err != nil {
			_ = f.Close()
			return fmt.Errorf("seek %s to %d: %w", r.path, r.offset, err)
		}
		r.cn, r.f = cn, f
		return nil
	})
}

func (r *reader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, os.ErrClosed
	}
	if r.limited && r.remaining <= 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := r.ctx.Err(); err != nil {
		return 0, r.c.errorf("read %s: %w", r.desc, err)
	}
	if len(p) > readChunkSize {
		p = p[:readChunkSize]
	}
	if r.limited && int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	for {
		cn := r.cn
		stop := r.c.watch(r.ctx, cn)
		n, err := r.f.Read(p)
		stop()
		r.offset += int64(n)
		r.remaining -= int64(n)
		if err == nil || err == io.EOF {
			return n, err
		}
		if n > 0 {
			return n, nil // report the error on the next call, if it persists
		}
		if !cn.lost(err) || r.ctx.Err() != nil {
			if r.ctx.Err() != nil {
				err = fmt.Errorf("%w (%w)", r.ctx.Err(), err)
			}
			return 0, r.c.errorf("read %s at offset %d: %w", r.desc, r.offset, err)
		}
		r.c.drop(cn, err)
		if err := r.open(); err != nil {
			return 0, r.c.errorf("read %s at offset %d: reopen after the connection broke: %w", r.desc, r.offset, err)
		}
	}
}

func (r *reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.release()
	if r.cn.down() {
		return nil
	}
	if err := r.f.Close(); err != nil && !r.cn.lost(err) {
		return r.c.errorf("close %s: %w", r.desc, err)
	}
	return nil
}

// WriteLTXFile stores the whole of r as the given file, atomically. The
// file's modification time is set to createdAt (the current time if zero),
// which LTXFiles returns, truncated to the second, as CreatedAt. If the
// connection breaks, the upload is retried on a new one when r can be
// rewound (it is an io.Seeker, such as an *os.File) or nothing was read
// from it yet.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckWrite(ctx, level, minTXID, maxTXID); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if createdAt.IsZero() {
		createdAt = time.Now()
	}
	createdAt = createdAt.Truncate(time.Second).UTC()
	if sec := createdAt.Unix(); sec < 0 || sec > math.MaxUint32 {
		return nil, c.errorf("write %s: timestamp %s cannot be stored as an SFTP modification time (1970 to 2106)", desc, createdAt)
	}

	release, err := c.transfers.Acquire(ctx, uploadMemory)
	if err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	defer release()

	src := newSource(r)
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)

	dir := c.LevelDir(level)
	name := ltx.FormatFilename(minTXID, maxTXID)
	var n int64
	err = c.do(ctx, func(err error) bool { return retryable(err) && src.canRewind() }, func(ctx context.Context, cn *conn) error {
		if err := src.rewind(); err != nil {
			return err
		}
		var err error
		n, err = c.upload(ctx, cn, dir, name, src, *buf, createdAt)
		return err
	})
	if err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	return &ltx.FileInfo{
		Level:     level,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Size:      n,
		CreatedAt: createdAt,
	}, nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// upload writes src to dir/name through a temp file, once.
func (c *Client) upload(ctx context.Context, cn *conn, dir, name string, src *source, buf []byte, createdAt time.Time) (int64, error) {
	s := cn.sftp
	final := path.Join(dir, name)
	tmp := path.Join(dir, storage.TempName(name, time.Now()))

	f, err := s.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.MkdirAll(dir); err != nil {
			return 0, fmt.Errorf("create directory %s: %w", dir, err)
		}
		f, err = s.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	}
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", tmp, err)
	}
	committed := false
	defer func() {
		if !committed && !cn.down() {
			_ = f.Close() // may be closed already
			_ = s.Remove(tmp)
		}
	}()

	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		nr, rerr := src.Read(buf)
		if nr > 0 {
			if _, err := f.Write(buf[:nr]); err != nil {
				return n, fmt.Errorf("write %s: %w", tmp, err)
			}
			n += int64(nr)
		}
		if rerr == io.EOF {
			break
		} else if rerr != nil {
			return n, &sourceError{err: rerr}
		}
	}
	if cn.fsync {
		if err := f.Sync(); err != nil {
			return n, fmt.Errorf("fsync %s: %w", tmp, err)
		}
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := s.Chtimes(tmp, createdAt, createdAt); err != nil {
		return n, fmt.Errorf("set the modification time of %s: %w", tmp, err)
	}
	if err := ctx.Err(); err != nil {
		return n, err
	}
	if cn.posixRename && !c.noPosixRename {
		if err := s.PosixRename(tmp, final); err != nil {
			return n, fmt.Errorf("rename %s to %s: %w", tmp, final, err)
		}
	} else if err := c.replace(s, dir, name, tmp); err != nil {
		return n, err
	}
	committed = true
	return n, nil
}

// replace renames tmp onto dir/name with plain SFTP renames, for servers
// without posix-rename@openssh.com. A plain rename does not replace a file,
// so an existing one is first renamed aside to ".<name>.old", and removed
// only once the new file is in place. If the process dies between the two
// renames, the old file is whole under the aside name, and the next listing
// renames it back; if it dies after, the next listing removes it.
func (c *Client) replace(s *sftp.Client, dir, name, tmp string) error {
	final := path.Join(dir, name)
	aside := path.Join(dir, asideName(name))
	var err error
	for range replaceAttempts {
		if err = s.Rename(tmp, final); err == nil {
			return nil
		}
		if _, serr := s.Stat(final); serr != nil {
			return fmt.Errorf("rename %s to %s: %w", tmp, final, err)
		}
		// A file left aside by an earlier replacement is older than the
		// one in place.
		if rerr := s.Remove(aside); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return fmt.Errorf("replace %s: remove %s: %w", final, aside, rerr)
		}
		if rerr := s.Rename(final, aside); rerr != nil {
			if errors.Is(rerr, fs.ErrNotExist) {
				continue // removed meanwhile: the rename into place may work now
			}
			return fmt.Errorf("replace %s: rename it aside to %s: %w", final, aside, rerr)
		}
		if c.betweenRenames != nil {
			if herr := c.betweenRenames(aside); herr != nil {
				return herr
			}
		}
		if err = s.Rename(tmp, final); err == nil {
			if rerr := s.Remove(aside); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				c.log.Warn("could not remove the replaced file; the next listing removes it", "destination", c.desc, "file", aside, "error", rerr)
			}
			return nil
		}
		// Put the old file back. This fails, harmlessly, when a listing
		// did so already, and the next attempt renames it aside again.
		_ = s.Rename(aside, final)
	}
	return fmt.Errorf("rename %s to %s: %w", tmp, final, err)
}

// replaceAttempts bounds the attempts of replace, which a listing that
// renames the old file back at the wrong moment can make fail.
const replaceAttempts = 3

// asideName returns ".<name>.old", the name a replaced file has until its
// replacement is in place.
func asideName(name string) string { return "." + name + asideSuffix }

// asideOf reports whether name is the aside name of an LTX file, and that
// file's name.
func asideOf(name string) (final string, ok bool) {
	if !strings.HasPrefix(name, ".") || !strings.HasSuffix(name, asideSuffix) {
		return "", false
	}
	final = strings.TrimSuffix(name[1:], asideSuffix)
	if _, _, ok := storage.ParseFileName(final); !ok {
		return "", false
	}
	return final, true
}

// recoverAside handles the file an interrupted replacement left at the
// aside name in dir. If the replacement is in place, the old file is
// removed. Otherwise it is the only whole copy: it is renamed back, and
// recoverAside reports true. A plain rename never replaces a file, so this
// cannot undo a replacement that lands meanwhile.
func (c *Client) recoverAside(cn *conn, dir, aside, final string, finalListed bool) bool {
	from, to := path.Join(dir, aside), path.Join(dir, final)
	if finalListed {
		if err := cn.sftp.Remove(from); err == nil {
			c.log.Info("removed a file replaced by an interrupted upload", "destination", c.desc, "file", from)
		}
		return false
	}
	if err := cn.sftp.Rename(from, to); err != nil {
		c.log.Warn("could not rename back a file an interrupted upload had renamed aside", "destination", c.desc, "file", from, "to", to, "error", err)
		return false
	}
	c.log.Warn("renamed back a file an interrupted upload had renamed aside", "destination", c.desc, "file", to)
	return true
}

// source is the data of an upload, which a retry reads again from the
// start.
type source struct {
	r      io.Reader
	seeker io.Seeker // nil when r cannot seek
	start  int64     // r's offset when the upload began
	read   int64     // bytes read by the current attempt
}

func newSource(r io.Reader) *source {
	s := &source{r: r}
	if sk, ok := r.(io.Seeker); ok {
		if off, err := sk.Seek(0, io.SeekCurrent); err == nil {
			s.seeker, s.start = sk, off
		}
	}
	return s
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.read += int64(n)
	return n, err
}

// canRewind reports whether the data can be read again from the start.
func (s *source) canRewind() bool { return s.read == 0 || s.seeker != nil }

// rewind prepares the source for another attempt.
func (s *source) rewind() error {
	if s.read == 0 {
		return nil
	}
	if s.seeker == nil {
		return errors.New("cannot retry: the data to upload cannot be read again")
	}
	if _, err := s.seeker.Seek(s.start, io.SeekStart); err != nil {
		return &sourceError{err: err}
	}
	s.read = 0
	return nil
}

// DeleteLTXFiles removes the given files, several at a time. Files already
// gone are not an error.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	return storage.DeleteEach(ctx, files, deleteConcurrency, c.errorf, func(gctx context.Context, info *ltx.FileInfo) error {
		p := c.LTXFilePath(info.Level, info.MinTXID, info.MaxTXID)
		err := c.do(gctx, nil, func(ctx context.Context, cn *conn) error {
			// The error names the path.
			if err := cn.sftp.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if !cn.posixRename || c.noPosixRename {
				// A copy an interrupted replacement left aside would
				// otherwise be renamed back by the next listing.
				aside := path.Join(path.Dir(p), asideName(path.Base(p)))
				if err := cn.sftp.Remove(aside); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("remove %s: %w", aside, err)
				}
			}
			return nil
		})
		if err != nil {
			return c.errorf("delete %s: %w", storage.Describe(info.Level, info.MinTXID, info.MaxTXID), err)
		}
		return nil
	})
}
