package gcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	gcs "cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/walship/walship/storage"
)

// Records (storage.Records) are objects beside the ltx directory,
// <path>/<name>, written with GCS preconditions: ifGenerationMatch=0 to
// create one, ifGenerationMatch=<generation> to replace it. Their version is
// the object's generation, in decimal, which every write of an object
// changes.
//
// Record writes are retried like uploads (the client's policy retries every
// request), which is safe: a retried create or replace whose first attempt
// succeeded after all gets 412, since the record is no longer absent or at
// the generation read, and is reported as a conflict. The caller reads the
// record again and finds its own write. They take no transfer slot: a record
// is small, and a replica that must renew its record should not wait behind
// large uploads.

// recordName returns the object name of a record.
func (c *Client) recordName(name string) string {
	if c.prefix == "" {
		return name
	}
	return c.prefix + "/" + name
}

// ReadRecord returns a record's content and generation. A missing record is
// an error wrapping storage.ErrNotFound.
func (c *Client) ReadRecord(ctx context.Context, name string) ([]byte, string, error) {
	if err := storage.CheckRecord(name, nil); err != nil {
		return nil, "", c.errorf("read record: %w", err)
	}
	obj := c.recordName(name)
	if err := ctx.Err(); err != nil {
		return nil, "", c.errorf("read record %s: %w", name, err)
	}
	// The reader's attributes and content are of one generation: a read
	// that has to resume asks for that generation.
	r, err := c.bkt.Object(obj).NewReader(ctx)
	switch {
	case errors.Is(err, gcs.ErrObjectNotExist):
		return nil, "", c.errorf("read record %s: %w: object %s: %w", name, storage.ErrNotFound, obj, err)
	case err != nil:
		return nil, "", c.errorf("read record %s (object %s): %w", name, obj, c.explain(err))
	}
	defer r.Close()
	tooLarge := c.errorf("read record %s: object %s is larger than the %d bytes a record may hold: it is not a record walship wrote", name, obj, storage.MaxRecordSize)
	if r.Attrs.Size > storage.MaxRecordSize {
		return nil, "", tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(r, storage.MaxRecordSize+1))
	switch {
	case err != nil:
		return nil, "", c.errorf("read record %s (object %s): %w", name, obj, c.explain(err))
	case len(data) > storage.MaxRecordSize:
		return nil, "", tooLarge
	case r.Attrs.Generation <= 0:
		return nil, "", c.errorf("read record %s (object %s): the server answered without the object's generation, which records need as their version", name, obj)
	}
	return data, strconv.FormatInt(r.Attrs.Generation, 10), nil
}

// WriteRecord stores data as the record if it is still at version (its
// generation), or, with an empty version, if it does not exist; GCS refuses
// the upload otherwise, and the error wraps storage.ErrConflict. It returns
// the new generation.
func (c *Client) WriteRecord(ctx context.Context, name string, data []byte, version string) (string, error) {
	if err := storage.CheckRecord(name, data); err != nil {
		return "", c.errorf("write record: %w", err)
	}
	obj := c.recordName(name)
	cond := gcs.Conditions{DoesNotExist: true}
	if version != "" {
		// A generation of 0 would be no condition at all.
		gen, err := strconv.ParseInt(version, 10, 64)
		if err != nil || gen <= 0 {
			return "", c.errorf("write record %s: %q is not a generation, so not a record version", name, version)
		}
		cond = gcs.Conditions{GenerationMatch: gen}
	}
	if err := ctx.Err(); err != nil {
		return "", c.errorf("write record %s: %w", name, err)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	budget := new(retryBudget)
	w := c.bkt.Object(obj).If(cond).Retryer(gcs.WithErrorFunc(budget.retry)).NewWriter(wctx)
	// A buffer larger than the record: one request, which the SDK can send
	// again.
	w.ChunkSize = roundUp(len(data)+1, MinPartSize)
	w.ContentType = "application/json"
	if _, err := w.Write(data); err != nil {
		// Cancelling the upload before Close keeps it from being committed.
		cancel()
		_ = w.Close()
		return "", c.errorf("write record %s (object %s): %w", name, obj, c.explain(err))
	}
	err := w.Close()
	var gerr *googleapi.Error
	switch {
	case errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed:
		return "", c.errorf("write record %s: %w", name, conflict(version))
	case errors.As(err, &gerr) && gerr.Code == http.StatusNotFound:
		// An upload finds nothing else missing.
		return "", c.errorf("write record %s (object %s): bucket %q does not exist: create it or fix the bucket name: %w", name, obj, c.bucket, err)
	case err != nil:
		return "", c.errorf("write record %s (object %s): %w", name, obj, c.explain(err))
	}
	attrs := w.Attrs()
	if attrs == nil || attrs.Generation <= 0 {
		return "", c.errorf("write record %s (object %s): the record was written, but the server answered without its generation, which records need as their version", name, obj)
	}
	return strconv.FormatInt(attrs.Generation, 10), nil
}

// conflict is the error of a write whose precondition failed.
func conflict(version string) error {
	if version == "" {
		return fmt.Errorf("%w (the record exists)", storage.ErrConflict)
	}
	return fmt.Errorf("%w (the record is no longer at generation %s)", storage.ErrConflict, version)
}
