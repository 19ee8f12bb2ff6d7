package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/walship/walship/storage"
)

// Records (storage.Records) are objects beside the level directories,
// PATH/<name>, written with S3's conditional PUTs: If-None-Match: * to
// create one, If-Match: <ETag> to replace it. Their version is the ETag, as
// the store gives it.
//
// The store decides which of two writers wins, so it must honour both
// headers: AWS has since late 2024, and so do current MinIO and versitygw;
// older stores answered 501, or ignored the headers and overwrote. Before its
// first record write a client checks, once, that the store refuses a
// conditional write it must refuse (checkConditionalWrites), and refuses to
// write records to one that does not.
//
// Record writes are retried by the SDK like any other request, which is
// safe: a retried create or replace whose first attempt succeeded after all
// gets 412, since the record is no longer absent or at the version read, and
// is reported as a conflict. The caller reads the record again and finds its
// own write. They take no transfer slot: a record is small, and a replica
// that must renew its record should not wait behind large uploads.

// errConditionalWritesUnsupported is wrapped by the error of a record write
// to a store that does not honour conditional writes.
var errConditionalWritesUnsupported = errors.New("this S3-compatible store does not support conditional writes " +
	"(If-None-Match and If-Match), which walship needs to keep one writer per replica")

// recordKey returns the object key of a record.
func (c *Client) recordKey(name string) string {
	if c.opts.prefix == "" {
		return name
	}
	return c.opts.prefix + "/" + name
}

// ReadRecord returns a record's content and ETag. A missing record is an
// error wrapping storage.ErrNotFound.
func (c *Client) ReadRecord(ctx context.Context, name string) ([]byte, string, error) {
	if err := storage.CheckRecord(name, nil); err != nil {
		return nil, "", c.errorf("read record: %w", err)
	}
	op := "read record " + name
	if err := ctx.Err(); err != nil {
		return nil, "", c.errorf("%s: %w", op, err)
	}
	api, _, err := c.sdk(ctx)
	if err != nil {
		return nil, "", c.errorf("%s: %w", op, err)
	}
	var data []byte
	var etag string
	// The SDK retries the request; an answer cut off midway is asked for
	// again from the start, as a GET can be.
	err = storage.Retry(ctx, storage.DefaultRetry, isBrokenAnswer, func(ctx context.Context) (err error) {
		data, etag, err = c.getRecord(ctx, api, name)
		return err
	})
	switch {
	case isNotFound(err):
		return nil, "", c.errorf("%s: %w: %w", op, storage.ErrNotFound, err)
	case err != nil:
		return nil, "", c.opError(op, err)
	case etag == "":
		return nil, "", c.errorf("%s: the store answered without the object's ETag, which records need as their version", op)
	}
	return data, etag, nil
}

// getRecord GETs a record's object, refusing one larger than a record may be.
func (c *Client) getRecord(ctx context.Context, api *s3.Client, name string) ([]byte, string, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(c.opts.bucket), Key: aws.String(c.recordKey(name))}
	c.opts.sse.getObject(in)
	out, err := api.GetObject(ctx, in)
	if err != nil {
		return nil, "", err
	}
	defer out.Body.Close()
	tooLarge := fmt.Errorf("object %s is larger than the %d bytes a record may hold: it is not a record walship wrote", c.recordKey(name), storage.MaxRecordSize)
	if aws.ToInt64(out.ContentLength) > storage.MaxRecordSize {
		return nil, "", tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(out.Body, storage.MaxRecordSize+1))
	if err != nil {
		return nil, "", brokenAnswer{err}
	}
	if len(data) > storage.MaxRecordSize {
		return nil, "", tooLarge
	}
	return data, aws.ToString(out.ETag), nil
}

// brokenAnswer is an answer that broke off while it was read.
type brokenAnswer struct{ err error }

func (e brokenAnswer) Error() string { return "the answer was cut off: " + e.err.Error() }
func (e brokenAnswer) Unwrap() error { return e.err }

func isBrokenAnswer(err error) bool {
	var cut brokenAnswer
	return errors.As(err, &cut)
}

// WriteRecord stores data as the record if it is still at version (its ETag),
// or, with an empty version, if it does not exist; the store refuses the PUT
// otherwise, and the error wraps storage.ErrConflict. It returns the new
// ETag.
func (c *Client) WriteRecord(ctx context.Context, name string, data []byte, version string) (string, error) {
	if err := storage.CheckRecord(name, data); err != nil {
		return "", c.errorf("write record: %w", err)
	}
	op := "write record " + name
	// If-Match: * (or a list of tags) would match any version.
	if version == "*" || strings.Contains(version, ",") {
		return "", c.errorf("%s: %q is not an ETag, so not a record version", op, version)
	}
	if err := ctx.Err(); err != nil {
		return "", c.errorf("%s: %w", op, err)
	}
	api, _, err := c.sdk(ctx)
	if err != nil {
		return "", c.errorf("%s: %w", op, err)
	}
	if c.opts.unconditional {
		return c.writeRecordUnconditionally(ctx, api, name, data, version)
	}
	if err := c.checkConditionalWrites(ctx, api); err != nil {
		return "", c.errorf("%s: %w", op, err)
	}

	out, err := c.putRecord(ctx, api, c.recordKey(name), data, version)
	switch {
	case err == nil:
	case isConflict(err), version != "" && isNotFound(err):
		// A replace of a record that is gone is answered 404.
		return "", c.errorf("%s: %w", op, conflict(version))
	case isNotImplemented(err):
		return "", c.errorf("%s: %w: it answered %w; %s", op, errConditionalWritesUnsupported, err, upgradeAdvice)
	default:
		return "", c.opError(op, err)
	}
	etag := aws.ToString(out.ETag)
	if etag == "" {
		return "", c.errorf("%s: the record was written, but the store answered without its ETag, which records need as their version", op)
	}
	return etag, nil
}

// upgradeAdvice ends the error of a store without conditional writes.
const upgradeAdvice = "upgrade the store to a release that supports conditional writes, or replicate to a store that does (Amazon S3 does); " +
	"or set conditional-writes: false on the replica, and walship checks who owns it without them, which two walships starting at the same moment can both pass"

// writeRecordUnconditionally is WriteRecord for a store without conditional
// writes (conditional-writes: false): it reads the record, compares its
// version, and writes it with a plain PUT. Two writers between the read and
// the PUT both succeed, the later one's content stays: the record is then
// only as good as the store allows, which the operator chose, and the first
// write of each client logs it.
func (c *Client) writeRecordUnconditionally(ctx context.Context, api *s3.Client, name string, data []byte, version string) (string, error) {
	op := "write record " + name
	if c.unconditionalWarned.CompareAndSwap(false, true) {
		c.log.Warn("conditional-writes: false: walship keeps one writer per replica by reading its owner record before writing it, which two walships starting at the same moment can both pass",
			"destination", c.String())
	}
	_, cur, err := c.ReadRecord(ctx, name)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if version != "" {
			return "", c.errorf("%s: %w", op, conflict(version))
		}
	case err != nil:
		return "", err
	case cur != version:
		return "", c.errorf("%s: %w", op, conflict(version))
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(c.opts.bucket),
		Key:           aws.String(c.recordKey(name)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String("application/json"),
	}
	c.opts.sse.putObject(in)
	out, err := api.PutObject(ctx, in)
	if err != nil {
		return "", c.opError(op, err)
	}
	return aws.ToString(out.ETag), nil
}

// conflict is the error of a conditional write the store refused.
func conflict(version string) error {
	if version == "" {
		return fmt.Errorf("%w (the record exists)", storage.ErrConflict)
	}
	return fmt.Errorf("%w (the record is no longer at version %s)", storage.ErrConflict, version)
}

// putRecord sends data as key with If-None-Match: *, or If-Match: version
// when version is set.
func (c *Client) putRecord(ctx context.Context, api *s3.Client, key string, data []byte, version string) (*s3.PutObjectOutput, error) {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(c.opts.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String("application/json"),
	}
	if version == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(version)
	}
	c.opts.sse.putObject(in)
	return api.PutObject(ctx, in)
}

// checkConditionalWrites makes sure, once per bucket and process, that the
// store honours If-None-Match and If-Match on PUT, with an object of its own
// at PATH/.walship-check-<random>, removed afterwards: the store must create it
// with If-None-Match: *, then refuse both another create and a replace at an
// ETag the object does not have. A store that answers 501 or ignores either
// header is an error. Only a store that passes is remembered: one that fails
// is checked again by the next write, so that an upgrade is noticed.
func (c *Client) checkConditionalWrites(ctx context.Context, api *s3.Client) error {
	select {
	case c.condLock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.condLock }()
	store := c.opts.endpoint + "\x00" + c.opts.bucket
	if _, ok := conditionalStores.Load(store); ok {
		c.condChecked = true
	}
	if c.condChecked {
		return nil
	}

	var random [8]byte
	_, _ = rand.Read(random[:])
	key := c.recordKey(".walship-check-" + hex.EncodeToString(random[:]))
	data := []byte("walship checks that this store honours conditional writes; this object is removed at once\n")
	_, err := c.putRecord(ctx, api, key, data, "")
	// A first attempt that succeeded, retried by the SDK, is refused.
	if err != nil && !isConflict(err) {
		return c.checkFailed("If-None-Match", err)
	}
	defer c.removeCheckObject(ctx, api, key)

	if _, err := c.putRecord(ctx, api, key, data, ""); err == nil {
		return fmt.Errorf("%w: it ignores If-None-Match (it replaced an existing object on a PUT with If-None-Match: *); %s",
			errConditionalWritesUnsupported, upgradeAdvice)
	} else if !isConflict(err) {
		return c.checkFailed("If-None-Match", err)
	}
	const otherETag = `"00000000000000000000000000000000"`
	if _, err := c.putRecord(ctx, api, key, data, otherETag); err == nil {
		return fmt.Errorf("%w: it ignores If-Match (it replaced an object on a PUT with If-Match and another ETag than the object's); %s",
			errConditionalWritesUnsupported, upgradeAdvice)
	} else if !isConflict(err) {
		return c.checkFailed("If-Match", err)
	}
	c.condChecked = true
	conditionalStores.Store(store, true)
	return nil
}

// conditionalStores holds the buckets (by endpoint and name) that passed
// checkConditionalWrites in this process: a thousand replicas in one bucket
// check it once.
var conditionalStores sync.Map

// checkFailed is the error of a PUT of checkConditionalWrites that failed.
func (c *Client) checkFailed(header string, err error) error {
	if isNotImplemented(err) {
		return fmt.Errorf("%w: it answered a PUT with %s with %w; %s", errConditionalWritesUnsupported, header, err, upgradeAdvice)
	}
	if h := c.hint(err); h != "" {
		return fmt.Errorf("check that the store supports conditional writes: %w (%s)", err, h)
	}
	return fmt.Errorf("check that the store supports conditional writes: %w", err)
}

// removeCheckObject deletes checkConditionalWrites's object, even when ctx
// has ended.
func (c *Client) removeCheckObject(ctx context.Context, api *s3.Client, key string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := api.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: aws.String(c.opts.bucket), Key: aws.String(key)})
	if err != nil && !isNotFound(err) {
		c.log.Warn("could not remove the object that checked the store's conditional writes: delete it by hand",
			"key", key, "error", err)
	}
}

// isConflict reports whether err is the refusal of a conditional write: 412
// Precondition Failed, or the 409 ConditionalRequestConflict of AWS when
// two conditional writes of one key race.
func isConflict(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	var resp *awshttp.ResponseError
	return errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusPreconditionFailed
}

// isNotImplemented reports whether err is a 501 answer: a store that does
// not implement what the request asked for.
func isNotImplemented(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NotImplemented" {
		return true
	}
	var resp *awshttp.ResponseError
	return errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusNotImplemented
}

// RecordsAtomic says that records are not atomic with conditional-writes:
// false, where a write is a read and then a plain PUT.
func (c *Client) RecordsAtomic() error {
	if c.opts.unconditional {
		return c.errorf("conditional-writes: false: this store writes records by reading and then writing, which two writers at the same moment can both pass, so it cannot hold a lease; use a store with conditional writes (Amazon S3, MinIO, versitygw) and remove conditional-writes: false")
	}
	return nil
}
