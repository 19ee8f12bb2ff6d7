package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/walship/walship/storage"
)

// Connection timing. An operation whose context ends is given cancelGrace
// to return on its own (every transfer checks its context between chunks);
// after that the server is taken to be stuck and the connection is closed,
// which fails everything waiting on it.
const (
	dialTimeout       = 30 * time.Second
	keepaliveInterval = 15 * time.Second
	keepaliveTimeout  = 60 * time.Second
	cancelGrace       = 2 * time.Second
)

// errClosed is returned by a Client used after Close.
var errClosed = errors.New("client is closed")

// conn is one SSH connection and the SFTP session on it.
type conn struct {
	ssh  *ssh.Client
	sftp *sftp.Client

	posixRename bool // the server has posix-rename@openssh.com
	fsync       bool // the server has fsync@openssh.com

	once   sync.Once
	closed chan struct{} // closed once the connection is down
}

// shutdown closes the connection. The TCP connection goes first, so that an
// SFTP session stuck on an unresponsive server cannot block the close.
func (cn *conn) shutdown() {
	cn.once.Do(func() {
		close(cn.closed)
		_ = cn.ssh.Close()
		go cn.sftp.Close()
	})
}

// down reports whether the connection has been closed.
func (cn *conn) down() bool {
	select {
	case <-cn.closed:
		return true
	default:
		return false
	}
}

// lost reports whether err, returned by an operation on cn, means the
// connection is broken rather than that the operation failed.
func (cn *conn) lost(err error) bool {
	if err == nil {
		return false
	}
	var src *sourceError
	if errors.As(err, &src) {
		return false
	}
	if cn.down() {
		return true
	}
	return isConnError(err)
}

// isConnError reports whether err is a broken or refused connection.
func isConnError(err error) bool {
	var opErr *net.OpError // not net.Error, which every syscall.Errno satisfies
	return errors.Is(err, sftp.ErrSSHFxConnectionLost) ||
		errors.Is(err, sftp.ErrSSHFxNoConnection) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.As(err, &opErr)
}

// connError is a connection that was lost or could not be made. It is
// retried (with a new connection) unless permanent: a host key or login
// that was refused does not get better by trying again.
type connError struct {
	err       error
	permanent bool
}

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// retryable is the storage.Retry predicate of every operation.
func retryable(err error) bool {
	var ce *connError
	return errors.As(err, &ce) && !ce.permanent
}

// sourceError is an error reading the data to upload: never the
// connection's fault, never retried.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "read the data to upload: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// do runs fn on the client's connection, connecting first if needed, and
// retries it on a new connection when the connection fails, with
// storage.Retry's backoff, while retryable allows (nil means the default).
// If ctx ends while fn waits on a stuck server, the connection is closed to
// interrupt it.
func (c *Client) do(ctx context.Context, retry func(error) bool, fn func(ctx context.Context, cn *conn) error) error {
	if retry == nil {
		retry = retryable
	}
	err := storage.Retry(ctx, c.retry, retry, func(ctx context.Context) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		cn, err := c.connect(ctx)
		if err != nil {
			return err
		}
		stop := c.watch(ctx, cn)
		err = fn(ctx, cn)
		stop()
		if cn.lost(err) {
			c.drop(cn, err)
			return &connError{err: err}
		}
		return err
	})
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

// watch closes cn if ctx ends and the operation in progress has not
// finished cancelGrace later. The returned stop marks the operation
// finished.
func (c *Client) watch(ctx context.Context, cn *conn) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	finished := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		t := time.NewTimer(c.cancelGrace)
		defer t.Stop()
		select {
		case <-finished:
		case <-cn.closed:
		case <-t.C:
			c.drop(cn, fmt.Errorf("an operation was cancelled (%v) but the server had not answered %s later", context.Cause(ctx), c.cancelGrace))
		}
	})
	return func() {
		close(finished)
		stopAfter()
	}
}

// connect returns the open connection, dialling a new one if there is none
// or it broke. One dial runs at a time; the others wait for it.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	if cn, err := c.current(); cn != nil || err != nil {
		return cn, err
	}
	select {
	case c.dialing <- struct{}{}:
		defer func() { <-c.dialing }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if cn, err := c.current(); cn != nil || err != nil {
		return cn, err
	}
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cn.shutdown()
		return nil, &connError{err: errClosed, permanent: true}
	}
	c.conn = cn
	return cn, nil
}

// current returns the open connection, if any.
func (c *Client) current() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, &connError{err: errClosed, permanent: true}
	}
	if c.conn != nil && c.conn.down() {
		c.conn = nil
	}
	return c.conn, nil
}

// drop closes cn and forgets it, so that the next operation reconnects.
func (c *Client) drop(cn *conn, reason error) {
	c.mu.Lock()
	current := c.conn == cn
	if current {
		c.conn = nil
	}
	closed := c.closed
	c.mu.Unlock()
	if current && !closed && !cn.down() {
		c.log.Warn("sftp connection closed; the next operation reconnects", "destination", c.String(), "reason", reason)
	}
	cn.shutdown()
}

// dial opens a new connection: TCP, SSH handshake with host key check and
// login, then the SFTP session. It takes at most dialTimeout, less if ctx
// ends sooner.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: c.dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", c.cfg.addr())
	if err != nil {
		return nil, &connError{err: fmt.Errorf("connect to %s: %w", c.cfg.addr(), err), permanent: ctx.Err() != nil}
	}
	deadline := time.Now().Add(c.dialTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })

	cn, err := c.handshake(nc)
	if !stop() {
		// ctx ended during the handshake, which closed nc.
		if cn != nil {
			cn.shutdown()
		}
		if err == nil {
			err = ctx.Err()
		}
		return nil, &connError{err: fmt.Errorf("connect to %s: %w (%w)", c.cfg.addr(), ctx.Err(), err), permanent: true}
	}
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})

	go func() {
		_ = cn.ssh.Wait()
		c.drop(cn, errors.New("the server closed the connection"))
	}()
	go c.keepalive(cn)
	c.log.Debug("sftp connected", "destination", c.String())
	return cn, nil
}

// handshake logs in over nc and starts the SFTP session.
func (c *Client) handshake(nc net.Conn) (*conn, error) {
	client, err := c.sshHandshake(nc)
	if err != nil {
		return nil, err
	}
	opts := []sftp.ClientOption{sftp.UseConcurrentWrites(c.cfg.concurrentWrites)}
	s, err := sftp.NewClient(client, opts...)
	if err != nil {
		_ = client.Close()
		return nil, &connError{err: fmt.Errorf("start the SFTP session on %s (is the sftp subsystem enabled in sshd_config?): %w", c.cfg.addr(), err), permanent: !isConnError(err)}
	}
	cn := &conn{ssh: client, sftp: s, closed: make(chan struct{})}
	_, cn.posixRename = s.HasExtension("posix-rename@openssh.com")
	_, cn.fsync = s.HasExtension("fsync@openssh.com")
	return cn, nil
}

// sshHandshake runs the SSH handshake over nc: it checks the server's host
// key and logs in.
func (c *Client) sshHandshake(nc net.Conn) (*ssh.Client, error) {
	addr := c.cfg.addr()
	hostKeyCallback, algos, err := c.hostKeys.callback(addr)
	if err != nil {
		return nil, &connError{err: err, permanent: true}
	}
	auth, methods, cleanup := c.authMethods()
	defer cleanup()
	config := &ssh.ClientConfig{
		User:              c.cfg.user,
		Auth:              auth,
		HostKeyCallback:   hostKeyCallback,
		HostKeyAlgorithms: algos,
		BannerCallback:    func(string) error { return nil },
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, config)
	if err != nil {
		var hostKeyErr *HostKeyError
		var algoErr *ssh.AlgorithmNegotiationError
		switch {
		case errors.As(err, &hostKeyErr):
			return nil, &connError{err: hostKeyErr, permanent: true}
		case errors.As(err, &algoErr) && algoErr.What == "host key" && len(algos) > 0:
			return nil, &connError{err: fmt.Errorf("the server %s has no host key of the types %s trusts (%s; it offers %s): refusing to connect",
				addr, c.hostKeySource(), strings.Join(algos, ", "), strings.Join(algoErr.RequestedAlgorithms, ", ")), permanent: true}
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, &connError{err: fmt.Errorf("log in to %s as %q with %s: %w; check user, key-path and password, and the server's authorized_keys",
				addr, c.cfg.user, strings.Join(methods, " and "), err), permanent: true}
		default:
			return nil, &connError{err: fmt.Errorf("SSH handshake with %s: %w", addr, err), permanent: !isConnError(err)}
		}
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

func (c *Client) hostKeySource() string {
	if c.hostKeys.fixed() {
		return "host-key"
	}
	return "known_hosts"
}

// authMethods returns the ways to log in, in order: public keys (the
// key-path or default identities, then those of ssh-agent), then the
// password. names describes them for messages; cleanup closes the agent
// connection once the handshake is over.
func (c *Client) authMethods() (methods []ssh.AuthMethod, names []string, cleanup func()) {
	cleanup = func() {}
	signers := slices.Clone(c.signers)
	if len(signers) > 0 {
		names = append(names, c.keyDesc)
	}
	if c.agentSock != "" {
		if ac, err := net.Dial("unix", c.agentSock); err != nil {
			c.log.Debug("sftp: ssh-agent unreachable", "socket", c.agentSock, "error", err)
		} else {
			cleanup = func() { _ = ac.Close() }
			if as, err := agent.NewClient(ac).Signers(); err == nil && len(as) > 0 {
				signers = append(signers, as...)
				names = append(names, "ssh-agent keys")
			}
		}
	}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if c.cfg.password != "" {
		pw := c.cfg.password
		methods = append(methods,
			ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				// Answer the password prompt; there is no one to answer
				// anything else.
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] {
						answers[i] = pw
					}
				}
				return answers, nil
			}))
		names = append(names, "password")
	}
	if len(names) == 0 {
		names = append(names, "no credentials")
	}
	return methods, names, cleanup
}

// keepalive checks that the server still answers while cn is open, and
// closes cn when it does not: a connection that died silently (the server
// vanished, a NAT forgot it) then fails fast and is redialled, instead of
// hanging every operation on it.
func (c *Client) keepalive(cn *conn) {
	t := time.NewTicker(c.keepaliveInterval)
	defer t.Stop()
	for {
		select {
		case <-cn.closed:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := cn.ssh.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		timer := time.NewTimer(c.keepaliveTimeout)
		select {
		case err := <-reply:
			timer.Stop()
			if err != nil {
				c.drop(cn, fmt.Errorf("keepalive: %w", err))
				return
			}
		case <-timer.C:
			c.drop(cn, fmt.Errorf("the server did not answer a keepalive within %s", c.keepaliveTimeout))
			return
		case <-cn.closed:
			timer.Stop()
			return
		}
	}
}
