// Package nats implements a replica in a NATS JetStream object store, with the
// layout of Litestream 0.5, so that each tool reads the other's replicas:
//
//	<bucket>: <path>/ltx/<level>/<minTXID>-<maxTXID>.ltx
//
// where level is written in decimal and both TXIDs as 16 lower-case hex
// digits. The LTX header timestamp of each file is stored in the object's
// "Litestream-Timestamp" header (RFC 3339, UTC), Litestream's name, which
// LTXFiles reads back as CreatedAt. Records (storage.Records) are objects
// beside ltx/, <path>/<name>, whose metadata JetStream compares and swaps.
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
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
