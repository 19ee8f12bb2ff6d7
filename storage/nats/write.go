package nats

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// WriteLTXFile stores the whole of r as the given file with its timestamp in
// the Litestream-Timestamp header, creating the bucket if needed. The file
// is whole or absent, even if the process dies during the write: see put.
//
// When r is an io.Seeker (an *os.File), failed attempts are retried from the
// start; any other reader gets one attempt.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckWrite(ctx, level, minTXID, maxTXID); err != nil {
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
		info, err = c.put(ctx, b, name, hdr, &sourceReader{r: storage.ContextReader(ctx, r)})
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
				"destination", c.desc, "object", name, "subject", b.chunkSubject(prev.NUID), "error", err)
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
			"destination", c.desc, "object", name, "subject", subject, "error", err)
	}
}

// sourceReader reads the file being written and marks its errors, but the
// end of the write's context, as the source's, so that they are never
// retried.
type sourceReader struct {
	r io.Reader // a storage.ContextReader
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		err = &sourceError{err}
	}
	return n, err
}

// sourceError is an error reading the data to upload.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "read source: " + e.err.Error() }

func (e *sourceError) Unwrap() error { return e.err }
