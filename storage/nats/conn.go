package nats

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/walship/walship/storage"
)

// store returns the bucket, connecting first if needed. A missing bucket is
// created when create is true and is errBucketMissing otherwise.
func (c *Client) store(ctx context.Context, create bool) (*bucket, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	if c.nc != nil && c.nc.IsClosed() {
		// The library gave up reconnecting (max-reconnects) or the server
		// closed the connection for good: start again. A connection that
		// is reconnecting is kept: the library redials the same server
		// every reconnect-wait, as a new connection would.
		c.nc, c.js, c.bucket = nil, nil, nil
	}
	if c.bucket != nil {
		return c.bucket, nil
	}
	if c.nc == nil {
		nc, err := c.connect(ctx)
		if err != nil {
			return nil, err
		}
		// Uploads publish their chunks asynchronously; a chunk not
		// acknowledged within ackTimeout fails its upload.
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(ackTimeout))
		if err != nil {
			nc.Close()
			return nil, err
		}
		c.nc, c.js = nc, js
	}

	obs, err := c.js.ObjectStore(ctx, c.cfg.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		if !create {
			return nil, errBucketMissing
		}
		obs, err = c.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      c.cfg.bucket,
			Description: "walship replica (Litestream layout)",
			Storage:     jetstream.FileStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			obs, err = c.js.ObjectStore(ctx, c.cfg.bucket) // created meanwhile
		} else if err == nil {
			c.log.Info("created NATS object store bucket", "destination", c.desc, "bucket", c.cfg.bucket, "storage", "file")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", c.cfg.bucket, err)
	}
	stream, err := c.js.Stream(ctx, streamName(c.cfg.bucket))
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: stream %s: %w", c.cfg.bucket, streamName(c.cfg.bucket), err)
	}
	if ttl := stream.CachedInfo().Config.MaxAge; ttl > 0 && !c.warned {
		c.warned = true
		c.log.Warn("NATS object store bucket has a TTL: files older than it vanish, which breaks restores; remove the TTL",
			"destination", c.desc, "bucket", c.cfg.bucket, "ttl", ttl)
	}
	c.bucket = &bucket{name: c.cfg.bucket, js: c.js, obs: obs, stream: stream}
	return c.bucket, nil
}

// forgetBucket drops the cached bucket after a request failed, so that the
// next attempt looks it up (or creates it) again: the bucket may have been
// deleted, and a request to a deleted bucket may get no answer at all rather
// than "not found".
func (c *Client) forgetBucket() {
	c.mu.Lock()
	c.bucket = nil
	c.mu.Unlock()
}

// conn returns the connection, or nil.
func (c *Client) conn() *nats.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nc
}

// do runs fn with the bucket, retrying as storage.Retry does. Each attempt
// gets a context without ctx's deadline (but ended with ctx), so that each
// JetStream request inside waits at most the library's request timeout (5 s)
// before the attempt fails and the next one starts, rather than all the time
// ctx has left. create says whether a missing bucket is created
// (errBucketMissing otherwise).
//
// An attempt that fails while the connection is down says so: a request
// made then waits for the reconnection until it times out.
func (c *Client) do(ctx context.Context, policy storage.RetryPolicy, create bool, retryable func(error) bool, fn func(context.Context, *bucket) error) error {
	rctx, cancel := requestContext(ctx)
	defer cancel()
	return storage.Retry(rctx, policy, retryable, func(ctx context.Context) error {
		err := c.attempt(ctx, create, fn)
		if err != nil {
			if nc := c.conn(); nc != nil && nc.IsReconnecting() {
				err = fmt.Errorf("%w (the connection to the NATS server is down; the client keeps reconnecting)", err)
			}
		}
		return err
	})
}

// attempt is one try of do.
func (c *Client) attempt(ctx context.Context, create bool, fn func(context.Context, *bucket) error) error {
	b, err := c.store(ctx, create)
	if err != nil {
		return err
	}
	err = fn(ctx, b)
	switch {
	case err == nil, errors.Is(err, jetstream.ErrObjectNotFound), errors.Is(err, jetstream.ErrNoObjectsFound),
		errors.Is(err, storage.ErrConflict): // the bucket answered
	case errors.Is(err, jetstream.ErrBucketNotFound), errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, nats.ErrStreamNotFound):
		c.forgetBucket()
		err = fmt.Errorf("%w: %w", errBucketMissing, err)
	default:
		c.forgetBucket()
	}
	return err
}

// requestContext returns a context that ends when ctx ends but has no
// deadline.
func requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	rctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	if ctx.Err() != nil {
		cancel(context.Cause(ctx))
		return rctx, func() {}
	}
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	return rctx, func() { stop(); cancel(context.Canceled) }
}

// connect dials the server. nats.Connect takes no context, so it runs
// aside and a cancelled ctx abandons it (its connection is then closed).
func (c *Client) connect(ctx context.Context) (*nats.Conn, error) {
	opts, err := c.options()
	if err != nil {
		return nil, err
	}
	scheme := "nats"
	if c.cfg.tls {
		scheme = "tls"
	}
	url := scheme + "://" + c.cfg.server // never with credentials

	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(url, opts...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			if isAuthError(r.err) {
				return nil, fmt.Errorf("connect: %w (check the username and password, token, nkey or creds)", r.err)
			}
			return nil, fmt.Errorf("connect: %w", r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("connect: %w", ctx.Err())
	}
}

// options returns the connection options: authentication, TLS, timeouts,
// and handlers that log the connection's ups and downs.
func (c *Client) options() ([]nats.Option, error) {
	cfg := c.cfg
	opts := []nats.Option{
		nats.Name("walship"),
		nats.Timeout(cfg.timeout),
		nats.MaxReconnects(cfg.maxReconnects),
		nats.ReconnectWait(cfg.reconnectWait),
		nats.NoCallbacksAfterClientClose(),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				c.log.Warn("disconnected from NATS server; reconnecting", "destination", c.desc, "error", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			c.log.Info("reconnected to NATS server", "destination", c.desc)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.log.Warn("NATS connection error", "destination", c.desc, "error", err)
		}),
	}
	switch {
	case cfg.jwt != "":
		opts = append(opts, nats.UserJWTAndSeed(cfg.jwt, cfg.seed))
	case cfg.creds != "":
		opts = append(opts, nats.UserCredentials(cfg.creds))
	case cfg.nkeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(cfg.nkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nkey %s: %w", cfg.nkeySeedFile, err)
		}
		opts = append(opts, opt)
	case cfg.user != "":
		opts = append(opts, nats.UserInfo(cfg.user, cfg.password))
	case cfg.token != "":
		opts = append(opts, nats.Token(cfg.token))
	}
	if cfg.tls {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	if len(cfg.rootCAs) > 0 {
		opts = append(opts, nats.RootCAs(cfg.rootCAs...))
	}
	if cfg.clientCert != "" {
		opts = append(opts, nats.ClientCert(cfg.clientCert, cfg.clientKey))
	}
	return opts, nil
}

// ctxErr prefers the context's error when it ended, since the library
// reports a cancelled request as a timeout.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

// isAuthError reports whether the server refused the credentials.
func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired) ||
		errors.Is(err, nats.ErrPermissionViolation)
}

// retryable reports whether a request failed for a reason that may pass:
// a timeout, no responders (JetStream not ready yet), a lost or refused
// connection, or a 5xx JetStream answer.
func retryable(err error) bool {
	var src *sourceError
	switch {
	case err == nil, errors.As(err, &src), errors.Is(err, errClosed), errors.Is(err, errBucketMissing),
		errors.Is(err, context.Canceled), isAuthError(err):
		return false
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrStaleConnection),
		errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrAsyncPublishTimeout),
		errors.Is(err, jetstream.ErrTooManyStalledMsgs),
		errors.Is(err, jetstream.ErrConnectionClosed),
		errors.Is(err, jetstream.ErrServerShutdown),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code >= 500 && apiErr.ErrorCode != jetstream.JSErrCodeJetStreamNotEnabledForAccount
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// retryableWrite is retryable, and also retries a write whose bucket was
// deleted meanwhile: the next attempt creates it again.
func retryableWrite(err error) bool {
	return retryable(err) || errors.Is(err, errBucketMissing)
}
