package nats

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/walship/walship/storage"
)

// Records are objects of the bucket like the LTX files, named <path>/<name>
// (beside ltx/, so no level lists them), which the object store's own tools
// show and read. An object's version becomes visible in one step, when its
// metadata message is stored (see put), and JetStream compares and swaps
// that step: the metadata is published with Nats-Expected-Last-Subject-
// Sequence set to the stream sequence of the metadata message the writer
// read (0 when there is none), and the stream refuses it when another
// message was stored on the subject since. A record's version is that
// sequence, in decimal.
//
// A KeyValue bucket has the same primitive (Create, Update with a revision)
// but is another stream, KV_<bucket>, that the operator would have to let
// walship create, or create and grant access to. The object store's stream
// is the replica's already, with every permission records need: publishing
// to its subjects, purging them, and getting its messages.
//
// Records take no slot of storage.Transfers: they are a few kilobytes, and a
// record write (an owner renewing its claim, say) must not wait behind the
// uploads of every database of the process.

// recordReadTries is how often ReadRecord starts again when the record is
// replaced, and its chunks purged, while it reads them.
const recordReadTries = 5

// errRecordChunks reports that a record's chunks are missing or do not
// match its metadata: it was replaced during the read, or is damaged.
var errRecordChunks = errors.New("the chunks of the record do not match its metadata")

// recordObject returns the name of a record's object in the bucket.
func (c *Client) recordObject(name string) string { return path.Join(c.cfg.prefix, name) }

// ReadRecord returns the record and its version. A missing record (or
// bucket), or one deleted with the object store's tools, is an error
// wrapping storage.ErrNotFound.
func (c *Client) ReadRecord(ctx context.Context, name string) ([]byte, string, error) {
	if err := storage.CheckRecord(name, nil); err != nil {
		return nil, "", c.errorf("read %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, "", c.errorf("read record %s: %w", name, err)
	}
	object := c.recordObject(name)
	var (
		data []byte
		seq  uint64
	)
	err := c.do(ctx, c.retry, false, retryable, func(ctx context.Context, b *bucket) error {
		var err error
		data, seq, err = readRecord(ctx, b, object)
		return err
	})
	switch {
	case errors.Is(err, errBucketMissing), errors.Is(err, jetstream.ErrObjectNotFound):
		return nil, "", c.errorf("read record %s: %w (no object %s in bucket %s)", name, storage.ErrNotFound, object, c.cfg.bucket)
	case err != nil:
		return nil, "", c.errorf("read record %s: %w", name, ctxErr(ctx, err))
	}
	return data, strconv.FormatUint(seq, 10), nil
}

// readRecord reads the current version of a record: its metadata, then its
// chunks. A writer that replaces the record meanwhile purges the chunks
// being read: the read then starts again from the new metadata.
func readRecord(ctx context.Context, b *bucket, object string) ([]byte, uint64, error) {
	var err error
	for range recordReadTries {
		var cur recordMeta
		if cur, err = readRecordMeta(ctx, b, object); err != nil {
			return nil, 0, err
		}
		if !cur.exists() {
			return nil, 0, jetstream.ErrObjectNotFound
		}
		var data []byte
		if data, err = readRecordChunks(ctx, b, cur.info); !errors.Is(err, errRecordChunks) {
			return data, cur.seq, err
		}
	}
	return nil, 0, fmt.Errorf("object %s: %w, at each of %d reads: it is replaced all the time, or damaged", object, err, recordReadTries)
}

// recordMeta is the last metadata message of a record's object.
type recordMeta struct {
	seq  uint64                // its stream sequence; 0 when there is none
	info *jetstream.ObjectInfo // nil when there is none
}

// exists reports whether the record exists: its metadata is there and is not
// a deletion marker.
func (m recordMeta) exists() bool { return m.info != nil && !m.info.Deleted }

// readRecordMeta reads the last metadata message of a record's object.
func readRecordMeta(ctx context.Context, b *bucket, object string) (recordMeta, error) {
	msg, err := b.stream.GetLastMsgForSubject(ctx, b.metaSubject(object))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return recordMeta{}, nil
	}
	if err != nil {
		return recordMeta{}, err
	}
	var info jetstream.ObjectInfo
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		return recordMeta{}, fmt.Errorf("object %s: its metadata is not valid object store metadata: %w", object, err)
	}
	return recordMeta{seq: msg.Sequence, info: &info}, nil
}

// readRecordChunks reads the chunks of an object version, one request each
// (one in all for a record walship wrote), and checks them against its
// size and digest.
func readRecordChunks(ctx context.Context, b *bucket, info *jetstream.ObjectInfo) ([]byte, error) {
	if info.Size > storage.MaxRecordSize {
		return nil, fmt.Errorf("object %s is %d bytes, more than the %d a record may hold", info.Name, info.Size, storage.MaxRecordSize)
	}
	if uint64(info.Chunks) > max(info.Size, 1) {
		return nil, fmt.Errorf("object %s: %w (%d chunks for %d bytes)", info.Name, errRecordChunks, info.Chunks, info.Size)
	}
	subject := b.chunkSubject(info.NUID)
	data := make([]byte, 0, info.Size)
	// The chunks are stored before the metadata, so from the start of the
	// stream on; each request returns the first chunk from next on.
	next := uint64(1)
	for range info.Chunks {
		msg, err := b.stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("%w (chunk missing)", errRecordChunks)
		}
		if err != nil {
			return nil, err
		}
		if uint64(len(data)+len(msg.Data)) > info.Size {
			return nil, fmt.Errorf("%w (more bytes than its size, %d)", errRecordChunks, info.Size)
		}
		data = append(data, msg.Data...)
		next = msg.Sequence + 1
	}
	if uint64(len(data)) != info.Size {
		return nil, fmt.Errorf("%w (%d bytes, not its size, %d)", errRecordChunks, len(data), info.Size)
	}
	if info.Digest != "" && info.Digest != digest(data) {
		return nil, fmt.Errorf("%w (SHA-256 digest mismatch)", errRecordChunks)
	}
	return data, nil
}

// digest returns the object store's digest of data.
func digest(data []byte) string {
	h := sha256.New()
	h.Write(data)
	return jetstream.GetObjectDigestValue(h)
}

// WriteRecord stores the record and returns its new version, creating the
// bucket if needed.
//
// Failed attempts are retried with the client's policy, which is safe: each
// attempt is conditional on the version it read. An attempt whose answer was
// lost may have stored the record, though; each attempt stores its content
// under a new NUID, and when the next one finds the record at one of this
// write's NUIDs the write succeeded (it then returns that version). Found
// replaced since by another writer, it reports a conflict: the caller
// re-reads the record.
func (c *Client) WriteRecord(ctx context.Context, name string, data []byte, version string) (string, error) {
	if err := storage.CheckRecord(name, data); err != nil {
		return "", c.errorf("write %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", c.errorf("write record %s: %w", name, err)
	}
	var want uint64 // 0: the record must not exist
	if version != "" {
		var err error
		if want, err = strconv.ParseUint(version, 10, 64); err != nil || want == 0 {
			return "", c.errorf("write record %s: %w (version %q is not a version of a NATS record)", name, storage.ErrConflict, version)
		}
	}
	object := c.recordObject(name)
	var (
		ids []string // the NUIDs of this write's attempts
		seq uint64
	)
	err := c.do(ctx, c.retry, true, retryableWrite, func(ctx context.Context, b *bucket) error {
		ids = append(ids, nuid.Next())
		var err error
		seq, err = c.writeRecord(ctx, b, object, data, want, ids)
		return err
	})
	if err != nil {
		return "", c.errorf("write record %s: %w", name, ctxErr(ctx, err))
	}
	return strconv.FormatUint(seq, 10), nil
}

// writeRecord is one attempt of WriteRecord, under the last of ids: it
// stores the chunk, then the metadata if the record is still at want (or,
// for 0, does not exist), and returns the metadata's sequence.
func (c *Client) writeRecord(ctx context.Context, b *bucket, object string, data []byte, want uint64, ids []string) (uint64, error) {
	cur, err := readRecordMeta(ctx, b, object)
	if err != nil {
		return 0, err
	}
	if cur.exists() && slices.Contains(ids, cur.info.NUID) {
		return cur.seq, nil // stored by an earlier attempt, whose answer was lost
	}
	switch {
	case want == 0 && cur.exists():
		return 0, fmt.Errorf("%w (object %s exists, at version %d)", storage.ErrConflict, object, cur.seq)
	case want != 0 && !cur.exists():
		return 0, fmt.Errorf("%w (object %s does not exist)", storage.ErrConflict, object)
	case want != 0 && cur.seq != want:
		return 0, fmt.Errorf("%w (object %s is at version %d, not %d)", storage.ErrConflict, object, cur.seq, want)
	}

	id := ids[len(ids)-1]
	chunks := b.chunkSubject(id)
	info := &jetstream.ObjectInfo{
		ObjectMeta: jetstream.ObjectMeta{
			Name: object,
			Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunkSize},
		},
		Bucket: b.name,
		NUID:   id,
		Size:   uint64(len(data)),
		Digest: digest(data),
	}
	if len(data) > 0 { // MaxRecordSize < chunkSize: one chunk
		info.Chunks = 1
		if _, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: chunks, Data: data}); err != nil {
			c.purgeChunks(b, chunks, object)
			return 0, fmt.Errorf("store chunk: %w", err)
		}
	}
	meta, err := json.Marshal(info) // ModTime is zero, as the library stores it
	if err != nil {
		c.purgeChunks(b, chunks, object)
		return 0, err
	}
	// cur.seq is want, or for a create 0 or the sequence of a deletion
	// marker left by the object store's tools.
	m := nats.NewMsg(b.metaSubject(object))
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Data = meta
	ack, err := b.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(cur.seq))
	switch {
	case err == nil:
	case isWrongLastSequence(err):
		// Another writer's metadata came first: this attempt stored only
		// its chunk, which nothing will refer to.
		c.purgeChunks(b, chunks, object)
		return 0, fmt.Errorf("%w (another writer stored object %s first)", storage.ErrConflict, object)
	default:
		// The metadata may be stored, or be on its way: never remove the
		// chunk now (see put). The next attempt finds out.
		return 0, fmt.Errorf("store metadata: %w", err)
	}

	if cur.exists() && cur.info.NUID != "" {
		// The write is done: remove the chunks of the version it replaced,
		// even if ctx ends now. A reader still reading them starts again.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := b.stream.Purge(cctx, jetstream.WithPurgeSubject(b.chunkSubject(cur.info.NUID))); err != nil {
			c.log.Warn("could not remove the previous version of a record that was replaced; its chunks stay in the bucket, unused",
				"destination", c.desc, "object", object, "subject", b.chunkSubject(cur.info.NUID), "error", err)
		}
	}
	return ack.Sequence, nil
}

// isWrongLastSequence reports whether JetStream refused a publish because
// the subject's last sequence was not the one expected. Replicated streams
// report it with another code.
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
