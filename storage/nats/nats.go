// Package nats implements a replica in a NATS JetStream object store, with the
// layout of Litestream 0.5, so that either tool restores the other's replicas:
//
//	<bucket>: <path>/ltx/<level>/<minTXID>-<maxTXID>.ltx
//
// where level is written in decimal and both TXIDs as 16 lower-case hex
// digits. The LTX header timestamp of each file is stored in the object's
// "Litestream-Timestamp" header (RFC 3339, UTC), Litestream's name, which
// LTXFiles reads back as CreatedAt.
//
// The destination is nats://[user:password@]host[:port]/bucket[/path]. The
// bucket is created, with file storage, on the first write if it does not
// exist; reads and listings of a missing bucket find nothing and create
// nothing.
//
// Objects are read with the nats.go object store library, which Litestream
// uses, and written and deleted in its wire format (NATS ADR-20) but not
// with its Put and Delete: see WriteLTXFile and DeleteLTXFiles.
//
// The client holds one NATS connection, opened on first use (not by Open), and
// reconnected by the NATS library when it drops. Requests that fail for a
// passing reason (a timeout, no responders, a lost connection) are retried
// with storage.Retry. Close releases the connection.
package nats

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// Type is the value returned by Client.Type.
const Type = "nats"

// TimestampHeader is the object header that holds an LTX file's timestamp
// (Litestream's name).
const TimestampHeader = "Litestream-Timestamp"

const (
	// chunkSize is the object store's chunk size (the library's default).
	// A download holds one chunk in memory at a time, an upload at most
	// chunkWindow: their weights in storage.Transfers.
	chunkSize = 128 << 10

	// chunkWindow is how many chunks of an upload may await the stream's
	// acknowledgement at once.
	chunkWindow = 4

	// ackTimeout is how long an upload waits for the stream to acknowledge
	// one chunk before the attempt fails. A lost connection fails the
	// chunks in flight at once.
	ackTimeout = 30 * time.Second

	// After a failed upload, the client waits up to settleTimeout for the
	// chunks still in flight, then takes up to cleanupTimeout to purge
	// them, even when the caller's context has ended.
	settleTimeout  = 2 * time.Second
	cleanupTimeout = 5 * time.Second

	// listTimeout bounds one attempt to list a bucket: a listing streams
	// every object's metadata and would otherwise wait as long as ctx for a
	// server that went away.
	listTimeout = 2 * time.Minute

	// The time allowed to download one object when ctx has no deadline:
	// readTimeoutBase plus the object's size at readMinRate bytes a second.
	// Without a deadline the library allows only its default API timeout
	// (5 s) for the whole download.
	readTimeoutBase = 2 * time.Minute
	readMinRate     = 256 << 10

	// deleteConcurrency is how many objects DeleteLTXFiles removes at once.
	deleteConcurrency = 8
)

var (
	_ storage.Client      = (*Client)(nil)
	_ storage.RangeReader = (*Client)(nil)
)

// errBucketMissing reports that the bucket does not exist (yet).
var errBucketMissing = errors.New("bucket does not exist")

// errListTimeout ends a listing that took longer than listTimeout.
var errListTimeout = fmt.Errorf("listing the bucket took longer than %s: %w", listTimeout, context.DeadlineExceeded)

// errClosed is returned after Close.
var errClosed = errors.New("client is closed")

// Client is a replica in a NATS JetStream object store. It is safe for
// concurrent use.
type Client struct {
	cfg       *config
	desc      string
	transfers *storage.Transfers
	log       *slog.Logger
	retry     storage.RetryPolicy

	mu     sync.Mutex
	closed bool
	nc     *nats.Conn
	js     jetstream.JetStream
	bucket *bucket // nil until the bucket is known to exist
	warned bool    // about the bucket's TTL
}

// bucket is the object store as one connection sees it: the library's
// handle, used for reads, and the stream behind it, which the client writes
// and deletes objects in directly.
type bucket struct {
	name   string
	js     jetstream.JetStream
	obs    jetstream.ObjectStore
	stream jetstream.Stream
}

// streamName returns the name of a bucket's stream. The names of the stream
// and its subjects are the object store's wire format (NATS ADR-20): stream
// OBJ_<bucket>; an object's chunks on $O.<bucket>.C.<nuid>, with a new NUID
// for each version; its metadata (a jetstream.ObjectInfo in JSON, one
// message per object, replaced by a rollup) on $O.<bucket>.M.<base64url(name)>.
func streamName(bucket string) string { return "OBJ_" + bucket }

// chunkSubject returns the subject of the chunks of an object version.
func (b *bucket) chunkSubject(nuid string) string { return "$O." + b.name + ".C." + nuid }

// metaSubject returns the subject of an object's metadata.
func (b *bucket) metaSubject(name string) string {
	return "$O." + b.name + ".M." + base64.URLEncoding.EncodeToString([]byte(name))
}

// Open returns a client for the destination of spec (nats://...). It checks
// the configuration but does not connect: the connection is made by the first
// request, so Open never waits on the network.
func Open(ctx context.Context, spec storage.Spec) (*Client, error) {
	cfg, err := parseConfig(spec)
	if err != nil {
		return nil, err
	}
	return &Client{
		cfg:       cfg,
		desc:      cfg.describe(),
		transfers: spec.Transfers,
		log:       spec.Log(),
		retry:     storage.DefaultRetry,
	}, nil
}

// Type returns "nats".
func (c *Client) Type() string { return Type }

// String returns nats://host:port/bucket[/path], without credentials.
func (c *Client) String() string { return c.desc }

// Bucket returns the name of the object store.
func (c *Client) Bucket() string { return c.cfg.bucket }

// RangedReads reports false: the object store has no ranged reads, so
// OpenLTXFile with an offset downloads and discards the bytes before it,
// and a file is best fetched in one stream.
func (c *Client) RangedReads() bool { return false }

// Path returns the prefix of object names inside the bucket ("" for none).
func (c *Client) Path() string { return c.cfg.prefix }

// ObjectName returns the name of an LTX file's object in the bucket.
func (c *Client) ObjectName(level int, minTXID, maxTXID ltx.TXID) string {
	return storage.LTXLevelDir(c.cfg.prefix, level) + storage.FileName(minTXID, maxTXID)
}

// Close closes the connection to the server. Requests made after Close fail.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.nc != nil {
		c.nc.Close()
	}
	c.nc, c.js, c.bucket = nil, nil, nil
	return nil
}

// errorf prefixes an error with the destination.
func (c *Client) errorf(format string, args ...any) error {
	return fmt.Errorf("replica %s: "+format, append([]any{c.desc}, args...)...)
}

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
			c.log.Info("created NATS object store bucket", "replica", c.desc, "bucket", c.cfg.bucket, "storage", "file")
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
			"replica", c.desc, "bucket", c.cfg.bucket, "ttl", ttl)
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
	case err == nil, errors.Is(err, jetstream.ErrObjectNotFound), errors.Is(err, jetstream.ErrNoObjectsFound):
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
				c.log.Warn("disconnected from NATS server; reconnecting", "replica", c.desc, "error", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			c.log.Info("reconnected to NATS server", "replica", c.desc)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.log.Warn("NATS connection error", "replica", c.desc, "error", err)
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

// LTXFiles lists the files of one level, sorted by MinTXID then MaxTXID.
// CreatedAt comes from the Litestream-Timestamp header, or is the object's
// modification time when the header is missing. Deleted objects and names
// that are not LTX files are ignored; a missing bucket or level is an empty
// list.
//
// Cost: each call reads the metadata of every object in the bucket (a few
// hundred bytes each), whatever its path or level, so listing all ten
// levels reads the bucket's metadata ten times. The server cannot select by
// prefix: an object's metadata subject holds its whole name base64-encoded
// in one token, which a subject filter cannot match in part. The metadata
// read is that of the objects that exist, plus any deletion markers left by
// other tools: DeleteLTXFiles leaves none (it purges the metadata), so the
// cost follows the replica's retained files, not its history.
func (c *Client) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("list level %d: %w", level, err)
	}
	var objs []*jetstream.ObjectInfo
	err := c.do(ctx, c.retry, false, retryable, func(ctx context.Context, b *bucket) error {
		lctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		timer := time.AfterFunc(listTimeout, func() { cancel(errListTimeout) })
		defer timer.Stop()
		var err error
		objs, err = b.obs.List(lctx)
		if err != nil && context.Cause(lctx) == errListTimeout {
			err = errListTimeout
		}
		return err
	})
	switch {
	case errors.Is(err, errBucketMissing), errors.Is(err, jetstream.ErrNoObjectsFound):
		return []*ltx.FileInfo{}, nil
	case err != nil:
		return nil, c.errorf("list level %d: %w", level, ctxErr(ctx, err))
	}

	dir := storage.LTXLevelDir(c.cfg.prefix, level)
	infos := make([]*ltx.FileInfo, 0, len(objs))
	for _, o := range objs {
		base, ok := strings.CutPrefix(o.Name, dir)
		if !ok || o.Deleted || strings.Contains(base, "/") {
			continue
		}
		minTXID, maxTXID, ok := storage.ParseFileName(base)
		if !ok || storage.FileName(minTXID, maxTXID) != base {
			continue
		}
		infos = append(infos, &ltx.FileInfo{
			Level:     level,
			MinTXID:   minTXID,
			MaxTXID:   maxTXID,
			Size:      int64(o.Size),
			CreatedAt: createdAt(o),
		})
	}
	storage.SortFiles(infos)
	return infos, nil
}

// createdAt returns an object's timestamp: its Litestream-Timestamp header
// (any case), else its modification time.
func createdAt(o *jetstream.ObjectInfo) time.Time {
	for k, v := range o.Headers {
		if strings.EqualFold(k, TimestampHeader) && len(v) > 0 {
			if t, err := storage.ParseTimestamp(v[0]); err == nil {
				return t
			}
		}
	}
	return o.ModTime.UTC()
}

// OpenLTXFile opens a file for reading from offset; a size of zero reads to
// the end. The object store has no ranged reads: the object is streamed from
// its first chunk, the first offset bytes are read and discarded, and the
// rest is limited to size bytes. A full read is checked against the object's
// SHA-256 digest at its end. A missing file is an error wrapping
// storage.ErrNotFound.
//
// When ctx has no deadline, the download must finish within two minutes plus
// the time to move the object at 256 KiB/s; after that reads fail and the
// caller may try again.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	if offset < 0 || size < 0 {
		return nil, c.errorf("open %s: invalid offset %d or size %d", desc, offset, size)
	}
	release, err := c.transfers.Acquire(ctx, chunkSize)
	if err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	name := c.ObjectName(level, minTXID, maxTXID)

	var rc io.ReadCloser
	err = c.do(ctx, c.retry, false, retryable, func(rctx context.Context, b *bucket) error {
		info, err := b.obs.GetInfo(rctx, name)
		if err != nil {
			return err
		}
		if offset >= int64(info.Size) {
			rc = io.NopCloser(strings.NewReader(""))
			return nil
		}
		// The download's context must have a deadline (see above), and
		// outlives this call: it derives from the caller's ctx.
		getCtx, cancel := context.WithTimeout(ctx, readTimeoutBase+time.Duration(info.Size/readMinRate)*time.Second)
		res, err := b.obs.Get(getCtx, name)
		if err != nil {
			cancel()
			return err
		}
		if offset > 0 {
			if _, err := io.CopyN(io.Discard, res, offset); err != nil {
				res.Close()
				cancel()
				return fmt.Errorf("skip to offset %d: %w", offset, err)
			}
		}
		r := &reader{ctx: getCtx, res: res, r: res, cancel: cancel, errorf: func(err error) error {
			return c.errorf("read %s: %w", desc, err)
		}}
		if size > 0 {
			r.r = io.LimitReader(res, size)
		}
		rc = r
		return nil
	})
	if err != nil {
		release()
		if errors.Is(err, errBucketMissing) || errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, c.errorf("open %s: %w (no object %s in bucket %s)", desc, storage.ErrNotFound, name, c.cfg.bucket)
		}
		return nil, c.errorf("open %s: %w", desc, ctxErr(ctx, err))
	}
	if r, ok := rc.(*reader); ok {
		r.release = release
		return r, nil
	}
	release()
	return rc, nil
}

// reader is a download in progress. Close ends it and gives back its
// transfer slot.
type reader struct {
	ctx     context.Context
	res     jetstream.ObjectResult
	r       io.Reader
	cancel  context.CancelFunc
	release func()
	errorf  func(error) error // names the destination and the file
	once    sync.Once
}

func (r *reader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, r.errorf(err)
	}
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = r.errorf(err)
	}
	return n, err
}

func (r *reader) Close() error {
	var err error
	r.once.Do(func() {
		err = r.res.Close()
		r.cancel()
		if r.release != nil {
			r.release()
		}
	})
	return err
}

// WriteLTXFile stores the whole of r as the given file with its timestamp in
// the Litestream-Timestamp header, creating the bucket if needed. The file
// is whole or absent, even if the process dies during the write: see put.
//
// When r is an io.Seeker (an *os.File), failed attempts are retried from the
// start; any other reader gets one attempt.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckFile(level, minTXID, maxTXID); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if createdAt.IsZero() {
		createdAt = time.Now()
	}
	release, err := c.transfers.Acquire(ctx, chunkSize*chunkWindow)
	if err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	defer release()

	name := c.ObjectName(level, minTXID, maxTXID)
	policy := c.retry
	seeker, _ := r.(io.Seeker)
	var start int64
	if seeker != nil {
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			seeker = nil
		}
	}
	if seeker == nil {
		policy.Attempts = 1
	}

	var info *jetstream.ObjectInfo
	attempt := 0
	err = c.do(ctx, policy, true, retryableWrite, func(ctx context.Context, b *bucket) error {
		if attempt++; attempt > 1 {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return &sourceError{err}
			}
		}
		hdr := nats.Header{TimestampHeader: []string{storage.FormatTimestamp(createdAt)}}
		var err error
		info, err = c.put(ctx, b, name, hdr, &sourceReader{ctx: ctx, r: r})
		return err
	})
	if err != nil {
		return nil, c.errorf("write %s: %w", desc, ctxErr(ctx, err))
	}
	return &ltx.FileInfo{
		Level:     level,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Size:      int64(info.Size),
		CreatedAt: createdAt.UTC(),
	}, nil
}

// put stores the contents of r as the object name, in the object store's
// wire format, the way the library's ObjectStore.Put does but in an order
// that never exposes an incomplete object:
//
//  1. the chunks go to a new chunk subject (a fresh NUID), and put waits
//     until the stream has acknowledged every one of them;
//  2. only then is the metadata published (a rollup on the object's
//     metadata subject), which replaces the previous version in one step;
//  3. then the chunks of the previous version are purged.
//
// The library publishes the metadata without waiting for the chunks'
// acknowledgements, so a lost chunk can be followed by metadata that the
// server accepts: an object listed with its full size that fails its digest
// check when read, having replaced a good previous version. Here a failure
// before step 2, or the death of the process, leaves the previous version
// (or nothing) plus chunks that no metadata refers to; put purges those on
// failure, best-effort.
func (c *Client) put(ctx context.Context, b *bucket, name string, hdr nats.Header, r io.Reader) (*jetstream.ObjectInfo, error) {
	prev, err := b.obs.GetInfo(ctx, name, jetstream.GetObjectInfoShowDeleted())
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, err
	}
	id := nuid.Next()
	chunks := b.chunkSubject(id)
	info := &jetstream.ObjectInfo{
		ObjectMeta: jetstream.ObjectMeta{
			Name:    name,
			Headers: hdr,
			Opts:    &jetstream.ObjectMetaOptions{ChunkSize: chunkSize},
		},
		Bucket: b.name,
		NUID:   id,
	}
	if err := c.sendChunks(ctx, b, chunks, r, info); err != nil {
		c.purgeChunks(b, chunks, name)
		return nil, err
	}

	data, err := json.Marshal(info) // ModTime is zero, as the library stores it
	if err != nil {
		c.purgeChunks(b, chunks, name)
		return nil, err
	}
	m := nats.NewMsg(b.metaSubject(name))
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Data = data
	if _, err := b.js.PublishMsg(ctx, m); err != nil {
		// The server may have stored the metadata and lost only its
		// acknowledgement, or may still receive it (from the client's
		// reconnect buffer, or a socket buffer): look, but never remove
		// the new chunks now, since metadata arriving later would then
		// point at nothing. At worst they stay, unreferenced.
		cctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		cur, gerr := b.obs.GetInfo(cctx, name)
		cancel()
		if gerr != nil || cur.NUID != id {
			return nil, err
		}
	}

	if prev != nil && !prev.Deleted && prev.NUID != "" && prev.NUID != id {
		// The write is done: finish the clean-up even if ctx ends now.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := b.stream.Purge(cctx, jetstream.WithPurgeSubject(b.chunkSubject(prev.NUID))); err != nil {
			c.log.Warn("could not remove the previous version of a file that was replaced; its chunks stay in the bucket, unused",
				"replica", c.desc, "object", name, "subject", b.chunkSubject(prev.NUID), "error", err)
		}
	}
	info.ModTime = time.Now().UTC()
	return info, nil
}

// chunkPool holds the buffers of uploads' chunks.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// sendChunks publishes the contents of r to subject in chunks of chunkSize,
// with at most chunkWindow awaiting acknowledgement, and returns once the
// stream has acknowledged every chunk, having set info's size, chunk count
// and digest. On failure it first waits a little for the chunks still in
// flight, so that purging the subject afterwards removes them too.
func (c *Client) sendChunks(ctx context.Context, b *bucket, subject string, r io.Reader, info *jetstream.ObjectInfo) (err error) {
	type inflight struct {
		ack jetstream.PubAckFuture
		buf *[]byte // not reused until acknowledged: a retry publishes it again
	}
	var pending []inflight
	// next waits for the oldest chunk in flight and takes it off pending
	// once the stream has answered for it.
	next := func() error {
		f := pending[0]
		select {
		case <-f.ack.Ok():
		case err := <-f.ack.Err():
			pending = pending[1:]
			chunkPool.Put(f.buf)
			return fmt.Errorf("store chunk: %w", err)
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		pending = pending[1:]
		chunkPool.Put(f.buf)
		return nil
	}
	defer func() {
		if err == nil || len(pending) == 0 {
			return
		}
		timer := time.NewTimer(settleTimeout)
		defer timer.Stop()
		for _, f := range pending {
			select {
			case <-f.ack.Ok():
			case <-f.ack.Err():
			case <-timer.C:
				return
			}
		}
	}()

	h := sha256.New()
	for done := false; !done; {
		if len(pending) == chunkWindow {
			if err := next(); err != nil {
				return err
			}
		}
		buf := chunkPool.Get().(*[]byte)
		n, err := io.ReadFull(r, *buf)
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			done = true
		case err != nil:
			chunkPool.Put(buf)
			return err
		}
		if n == 0 {
			chunkPool.Put(buf)
			continue
		}
		data := (*buf)[:n]
		h.Write(data)
		ack, err := b.js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: data})
		if err != nil {
			chunkPool.Put(buf)
			return fmt.Errorf("publish chunk: %w", err)
		}
		pending = append(pending, inflight{ack, buf})
		info.Size += uint64(n)
		info.Chunks++
	}
	for len(pending) > 0 {
		if err := next(); err != nil {
			return err
		}
	}
	info.Digest = jetstream.GetObjectDigestValue(h)
	return nil
}

// purgeChunks removes the chunks on subject after a failed upload. It is
// best-effort, with its own deadline, since the caller's ctx may be what
// ended the upload.
func (c *Client) purgeChunks(b *bucket, subject, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := b.stream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		c.log.Warn("could not remove the chunks of a failed write; they stay in the bucket, unused",
			"replica", c.desc, "object", name, "subject", subject, "error", err)
	}
}

// sourceReader reads the file being written, failing once ctx ends, and
// marks its errors as the source's so that they are never retried.
type sourceReader struct {
	ctx context.Context
	r   io.Reader
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &sourceError{err}
	}
	return n, err
}

// sourceError is an error reading the data to upload.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "read source: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// DeleteLTXFiles removes the given files, a few at a time. Files already gone
// are not an error.
//
// An object is removed by purging its metadata message, then its chunks,
// from the bucket's stream. The library's Delete leaves a deletion marker
// in place of the metadata, forever, which every listing then reads: with a
// file written every second and deleted after its retention, listings would
// grow without end. Purging the metadata first means that a delete cut
// short leaves unreferenced chunks, never an object without its data.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	return storage.DeleteEach(ctx, files, deleteConcurrency, c.errorf, func(gctx context.Context, f *ltx.FileInfo) error {
		name := c.ObjectName(f.Level, f.MinTXID, f.MaxTXID)
		var id string // the NUID of the object's chunks, once its metadata is gone
		metaGone := false
		err := c.do(gctx, c.retry, false, retryable, func(ctx context.Context, b *bucket) error {
			if !metaGone {
				info, err := b.obs.GetInfo(ctx, name, jetstream.GetObjectInfoShowDeleted())
				if err != nil {
					return err
				}
				if err := b.stream.Purge(ctx, jetstream.WithPurgeSubject(b.metaSubject(name))); err != nil {
					return err
				}
				id, metaGone = info.NUID, true
			}
			if id == "" {
				return nil
			}
			return b.stream.Purge(ctx, jetstream.WithPurgeSubject(b.chunkSubject(id)))
		})
		if err == nil || errors.Is(err, jetstream.ErrObjectNotFound) || errors.Is(err, errBucketMissing) {
			return nil
		}
		return c.errorf("delete %s: %w", storage.Describe(f.Level, f.MinTXID, f.MaxTXID), ctxErr(gctx, err))
	})
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
