// Package gcs implements a replica in a Google Cloud Storage bucket, through
// the official SDK (cloud.google.com/go/storage). The layout is the one used
// by Litestream 0.5, so each tool reads the other's replicas:
//
//	gs://<bucket>/<path>/ltx/<level>/<minTXID>-<maxTXID>.ltx
//
// Each object carries its LTX header timestamp in the custom metadata
// "litestream-timestamp" (RFC 3339, UTC), which listings read from the object
// attributes without further requests. Objects without it (written by other
// tools) report their creation time instead.
//
// # Destination and settings
//
// The destination is a URL, gs://bucket/path, or the config keys bucket and
// path. Other keys (config keys override URL query parameters of the same
// name):
//
//   - endpoint: the base URL of a GCS-compatible server: an emulator such as
//     fake-gcs-server at http://host:port, or a private (Private Service
//     Connect) or regional Google endpoint at https://. The JSON API path
//     /storage/v1/ is added when the URL has no path.
//   - credentials-file: a JSON credentials file (service account, authorized
//     user, external account, ...).
//   - part-size: the upload buffer (Writer.ChunkSize), default 8 MiB. A file
//     up to this size is uploaded in one request; a larger one in a resumable
//     upload of part-size chunks. Rounded up to a multiple of 256 KiB.
//   - skip-verify: do not verify the TLS certificate of an https endpoint.
//
// # Credentials
//
// credentials-file when set. Else, with an http:// endpoint (an emulator) or
// the standard STORAGE_EMULATOR_HOST environment variable, requests are not
// authenticated. Else (Google's own endpoint, or an https:// endpoint such as
// a Private Service Connect or regional one) Application Default
// Credentials: GOOGLE_APPLICATION_CREDENTIALS, then the gcloud user
// credentials ("gcloud auth application-default login"), then the metadata
// server (GCE, GKE workload identity, Cloud Run).
//
// # Writes, reads and retries
//
// GCS objects are atomic: a failed or cancelled upload leaves no object, and
// the SDK sends a CRC32C of the content that the server checks before it
// creates the object. Reads are ranged on the server; a read that starts at
// or past the end of a file is empty, as in the file backend. Requests are
// retried by the SDK with exponential backoff and jitter on 408, 429, 5xx,
// reset connections and timeouts, up to storage.DefaultRetry.Attempts tries
// and always bounded by the caller's context. Uploads are retried too
// (storage.RetryAlways), which is safe because a given name is always
// written with the same bytes (a record write, which is not, is refused as
// a conflict when repeated after it succeeded), with the same bound on tries
// in a row (the SDK alone would retry them for as long as the context
// lasts).
//
// A server that accepts a connection and then stops answering is a failure
// too, not a wait without end: every request gets its response headers
// within two minutes, no write to a connection and no read of a response
// body blocks for longer than that, and each chunk of a resumable upload
// has its own deadline (Writer.ChunkTransferTimeout), in proportion to its
// size. The request is then retried like any other failure.
//
// # Records
//
// Records (the replica's owner, say) are objects <path>/<name>, written with
// generation preconditions (ifGenerationMatch=0 to create, the generation
// read to replace), so that of two writers one wins; their version is the
// generation (see record.go).
package gcs

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	gcs "cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"github.com/superfly/ltx"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"

	"github.com/walship/walship/storage"
)

// Type is the value returned by Client.Type, and the URL scheme.
const Type = "gs"

const (
	// DefaultPartSize is the default upload buffer of one upload: files up
	// to this size go in a single request, larger ones in a resumable upload
	// of chunks of this size.
	DefaultPartSize = 8 << 20

	// MinPartSize is the smallest part-size: GCS resumable uploads send
	// chunks in multiples of 256 KiB.
	MinPartSize = googleapi.MinUploadChunkSize

	// MaxPartSize bounds part-size, since every upload holds a buffer of
	// that size in memory.
	MaxPartSize = 1 << 30

	// deleteConcurrency is how many deletes run at once: the JSON API's
	// batch endpoint is not available in the Go SDK.
	deleteConcurrency = 8

	// apiPath is the path of the JSON API on a server.
	apiPath = "/storage/v1/"

	// stallTimeout is how long a request waits for its response headers,
	// and how long one write to a connection or one read of a response body
	// may block, before the attempt fails (and is retried).
	stallTimeout = 2 * time.Minute

	// minChunkRate is the slowest transfer of a resumable upload's chunk, in
	// bytes per second, that is not taken for a stall: a chunk's deadline is
	// the stall timeout plus its size at this rate.
	minChunkRate = 64 << 10
)

var _ storage.Client = (*Client)(nil)

// Client is a replica in a GCS bucket. It is safe for concurrent use.
type Client struct {
	bucket    string
	prefix    string // without leading or trailing slashes; may be empty
	partSize  int
	client    *gcs.Client
	bkt       *gcs.BucketHandle
	transfers *storage.Transfers
	log       *slog.Logger
	stall     time.Duration // stallTimeout, or shorter in tests
}

// knobs are what tests may change.
type knobs struct {
	// stall replaces stallTimeout when set.
	stall time.Duration
}

// config is what Open reads from a Spec.
type config struct {
	bucket          string
	prefix          string
	endpoint        string // normalized, or "" for Google's own
	credentialsFile string
	partSize        int
	skipVerify      bool
}

// parseSpec reads and validates the destination and settings of spec. It
// does no I/O.
func parseSpec(spec storage.Spec) (*config, error) {
	u := spec.URL
	if u == nil {
		return nil, errors.New("gs replica has no URL: write it as gs://bucket/path")
	}
	if !strings.EqualFold(u.Scheme, Type) {
		return nil, fmt.Errorf("gs replica URL has scheme %q: write it as gs://bucket/path", u.Scheme)
	}
	if u.User != nil {
		return nil, errors.New("gs replica URL must not contain a user name or password: " +
			"use credentials-file or GOOGLE_APPLICATION_CREDENTIALS")
	}
	var c config
	c.bucket = cmp.Or(spec.Option("bucket"), u.Host)
	if c.bucket == "" {
		return nil, errors.New("gs replica has no bucket: write the URL as gs://bucket/path or set the bucket key")
	}
	if err := checkBucket(c.bucket); err != nil {
		return nil, err
	}
	c.prefix = strings.Trim(cmp.Or(spec.Option("path"), u.Path), "/")

	if ep := spec.Option("endpoint", "endpoint"); ep != "" {
		n, err := normalizeEndpoint(ep)
		if err != nil {
			return nil, err
		}
		c.endpoint = n
	}
	c.credentialsFile = spec.Option("credentials-file")

	partSize, err := spec.SizeOption(DefaultPartSize, "part-size", "part-size", "partSize")
	if err != nil {
		return nil, fmt.Errorf("gs replica: %w", err)
	}
	if partSize < MinPartSize || partSize > MaxPartSize {
		return nil, fmt.Errorf("gs replica: part-size %d is out of range: use 256KiB to 1GiB (default 8MiB)", partSize)
	}
	c.partSize = roundUp(int(partSize), MinPartSize)

	if c.skipVerify, err = spec.BoolOption(false, "skip-verify", "skip-verify", "skipVerify"); err != nil {
		return nil, fmt.Errorf("gs replica: %w", err)
	}
	if c.skipVerify && !strings.HasPrefix(c.endpoint, "https://") && !strings.HasPrefix(os.Getenv("STORAGE_EMULATOR_HOST"), "https://") {
		return nil, errors.New("gs replica: skip-verify applies only to an https endpoint: " +
			"set endpoint to https://host:port, or remove skip-verify")
	}
	return &c, nil
}

// checkBucket applies the GCS bucket naming rules that matter for a URL, so
// that a typo is reported before any request.
func checkBucket(b string) error {
	ok := len(b) >= 3 && len(b) <= 222
	for i := 0; ok && i < len(b); i++ {
		switch ch := b[i]; {
		case ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9':
		case ch == '-' || ch == '_' || ch == '.':
			ok = i > 0 && i < len(b)-1
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("gs replica: %q is not a valid bucket name: use 3 to 63 lower-case letters, digits, '-', '_' and '.', starting and ending with a letter or digit", b)
	}
	return nil
}

// normalizeEndpoint checks an endpoint URL and gives it the JSON API path
// when it has none.
func normalizeEndpoint(ep string) (string, error) {
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The text may hold anything, so it is not repeated.
		return "", errors.New("gs replica: endpoint is not an http or https URL: write it as http://host:port or https://host")
	}
	if u.User != nil {
		return "", errors.New("gs replica: endpoint must not contain a user name or password")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("gs replica: endpoint %s://%s%s must not have a query or fragment", u.Scheme, u.Host, u.EscapedPath())
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = apiPath
	} else if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.RawPath = ""
	return u.String(), nil
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// Open returns a client for the destination of spec (gs://bucket/path). It
// checks the settings and finds credentials, but sends no request to the
// bucket: a missing bucket or a permission problem shows on first use.
func Open(ctx context.Context, spec storage.Spec) (*Client, error) {
	return open(ctx, spec, knobs{})
}

func open(ctx context.Context, spec storage.Spec, k knobs) (*Client, error) {
	cfg, err := parseSpec(spec)
	if err != nil {
		return nil, err
	}
	c := &Client{
		bucket:    cfg.bucket,
		prefix:    cfg.prefix,
		partSize:  cfg.partSize,
		transfers: spec.Transfers,
		log:       spec.Log(),
		stall:     cmp.Or(k.stall, stallTimeout),
	}

	hc, err := httpClient(ctx, cfg, c.stall)
	if err != nil {
		return nil, c.errorf("%w", err)
	}
	// The HTTP client carries the credentials: the SDK is not to look
	// for others.
	opts := []option.ClientOption{option.WithHTTPClient(hc), option.WithoutAuthentication()}
	if cfg.endpoint != "" {
		opts = append(opts, option.WithEndpoint(cfg.endpoint))
	}
	client, err := gcs.NewClient(ctx, opts...)
	if err != nil {
		return nil, c.errorf("connect to Google Cloud Storage: %w", err)
	}
	client.SetRetry(
		gcs.WithBackoff(gax.Backoff{Initial: storage.DefaultRetry.Base, Max: storage.DefaultRetry.Max, Multiplier: 2}),
		gcs.WithMaxAttempts(storage.DefaultRetry.Attempts),
		// Every write of an LTX file's name carries the same bytes, so
		// retrying one that may have succeeded is harmless; a record write
		// carries a precondition, which a repeat fails (see record.go).
		gcs.WithPolicy(gcs.RetryAlways),
	)
	c.client = client
	c.bkt = client.Bucket(cfg.bucket)
	return c, nil
}

// unauthenticated reports whether requests go without credentials: to an
// emulator, named by an http:// endpoint or STORAGE_EMULATOR_HOST, when no
// credentials-file is set. An https:// endpoint (Private Service Connect, a
// regional endpoint) is Google's and needs credentials.
func unauthenticated(cfg *config) bool {
	if cfg.credentialsFile != "" {
		return false
	}
	return strings.HasPrefix(cfg.endpoint, "http://") || os.Getenv("STORAGE_EMULATOR_HOST") != ""
}

// httpClient returns the HTTP client of the SDK: a transport with the stall
// timeouts (and without certificate checks if skip-verify is set), with the
// replica's credentials on top. Errors loading credentials say where they
// come from.
func httpClient(ctx context.Context, cfg *config, stall time.Duration) (*http.Client, error) {
	var rt http.RoundTripper = &stallGuard{rt: baseTransport(cfg.skipVerify, stall), timeout: stall}
	if unauthenticated(cfg) {
		return &http.Client{Transport: rt}, nil
	}
	auth := []option.ClientOption{option.WithScopes(gcs.ScopeFullControl)}
	if cfg.credentialsFile != "" {
		typ, err := credentialsType(cfg.credentialsFile)
		if err != nil {
			return nil, err
		}
		auth = append(auth, option.WithAuthCredentialsFile(typ, cfg.credentialsFile))
	}
	t, err := htransport.NewTransport(ctx, rt, auth...)
	switch {
	case err != nil && cfg.credentialsFile != "":
		return nil, fmt.Errorf("load credentials-file %s: %w", cfg.credentialsFile, err)
	case err != nil:
		return nil, fmt.Errorf("find Application Default Credentials: %w (credentials come from credentials-file, "+
			"GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, or the metadata server; "+
			"only an http:// endpoint or STORAGE_EMULATOR_HOST, for an emulator, goes without)", err)
	}
	return &http.Client{Transport: t}, nil
}

// baseTransport is the SDK's own transport (http.DefaultTransport with a
// larger idle pool and HTTP/2 health checks) with the stall timeouts.
func baseTransport(skipVerify bool, stall time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 100
	t.ResponseHeaderTimeout = stall
	t.HTTP2 = &http.HTTP2Config{SendPingTimeout: 31 * time.Second, PingTimeout: 15 * time.Second}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &stallConn{Conn: conn, timeout: stall}, nil
	}
	if skipVerify {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	return t
}

// stallConn fails a write that cannot go on for longer than timeout (a
// server that stopped reading a request body), which the transport's
// response header timeout does not cover: it starts once the request is
// sent.
type stallConn struct {
	net.Conn
	timeout time.Duration
}

func (c *stallConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// errStall ends the read of a response body that received nothing for too
// long. It wraps io.ErrUnexpectedEOF, which the SDK retries (a download
// resumes where it stopped).
var errStall = fmt.Errorf("the server sent nothing for too long: %w", io.ErrUnexpectedEOF)

// stallGuard fails the read of a response body, a download or a listing,
// that blocks for longer than timeout, by cancelling the request.
type stallGuard struct {
	rt      http.RoundTripper
	timeout time.Duration
}

func (g *stallGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	resp, err := g.rt.RoundTrip(req.WithContext(ctx))
	if err != nil || resp.Body == nil || resp.Body == http.NoBody {
		cancel()
		return resp, err
	}
	resp.Body = &guardedBody{rc: resp.Body, cancel: cancel, timeout: g.timeout}
	return resp, nil
}

// guardedBody cancels its request when a Read blocks for longer than
// timeout. Only time spent inside Read counts: a slow reader is no stall.
type guardedBody struct {
	rc      io.ReadCloser
	cancel  context.CancelFunc
	timeout time.Duration
	timer   *time.Timer
	stalled atomic.Bool
}

func (b *guardedBody) Read(p []byte) (int, error) {
	if b.timer == nil {
		b.timer = time.AfterFunc(b.timeout, func() {
			b.stalled.Store(true)
			b.cancel()
		})
	} else {
		b.timer.Reset(b.timeout)
	}
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF && b.stalled.Load() {
		err = fmt.Errorf("%w (after %v)", errStall, b.timeout)
	}
	return n, err
}

func (b *guardedBody) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	err := b.rc.Close()
	b.cancel()
	return err
}

// credentialsType reads the type of a JSON credentials file, which the SDK
// needs to load it. Errors name the file, never its content.
func credentialsType(path string) (option.CredentialsType, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read credentials-file: %w", err)
	}
	var f struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(b, &f) != nil || f.Type == "" {
		return "", fmt.Errorf("credentials-file %s is not a Google JSON credentials file (no \"type\" field): "+
			"download a service account key or use `gcloud auth application-default login`", path)
	}
	return option.CredentialsType(f.Type), nil
}

// Close releases the SDK client's resources.
func (c *Client) Close() error { return c.client.Close() }

// Type returns "gs".
func (c *Client) Type() string { return Type }

// String returns gs://bucket/path.
func (c *Client) String() string {
	if c.prefix == "" {
		return "gs://" + c.bucket
	}
	return "gs://" + c.bucket + "/" + c.prefix
}

// Bucket returns the bucket name.
func (c *Client) Bucket() string { return c.bucket }

// Prefix returns the path inside the bucket, without leading or trailing
// slashes.
func (c *Client) Prefix() string { return c.prefix }

// ObjectName returns the name of the object holding an LTX file.
func (c *Client) ObjectName(level int, minTXID, maxTXID ltx.TXID) string {
	return storage.LTXLevelDir(c.prefix, level) + storage.FileName(minTXID, maxTXID)
}

// errorf prefixes an error with the replica description.
func (c *Client) errorf(format string, args ...any) error {
	return fmt.Errorf("replica %s: "+format, append([]any{c}, args...)...)
}

// explain adds what an operator needs to know to the SDK errors that have a
// usual cause.
func (c *Client) explain(err error) error {
	var gerr *googleapi.Error
	switch {
	case errors.Is(err, gcs.ErrBucketNotExist):
		return fmt.Errorf("bucket %q does not exist: create it or fix the bucket name: %w", c.bucket, err)
	case errors.As(err, &gerr) && gerr.Code == http.StatusUnauthorized:
		return fmt.Errorf("%w (the request was not authenticated: check the credentials)", err)
	case errors.As(err, &gerr) && gerr.Code == http.StatusForbidden:
		return fmt.Errorf("%w (the credentials need object read, create and delete permissions on bucket %q, e.g. roles/storage.objectAdmin)", err, c.bucket)
	}
	return err
}

// LTXFiles lists the files of one level, sorted by MinTXID then MaxTXID.
// CreatedAt comes from the litestream-timestamp metadata, else the object's
// creation time. A level with no objects is an empty list.
func (c *Client) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("list level %d: %w", level, err)
	}
	dir := storage.LTXLevelDir(c.prefix, level)
	q := &gcs.Query{Prefix: dir, Delimiter: "/"}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Metadata", "Created"}); err != nil {
		return nil, c.errorf("list level %d: %w", level, err)
	}

	infos := []*ltx.FileInfo{}
	it := c.bkt.Objects(ctx, q)
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		} else if err != nil {
			return nil, c.errorf("list level %d (gs://%s/%s): %w", level, c.bucket, dir, c.explain(err))
		}
		if attrs.Prefix != "" { // a "subdirectory"
			continue
		}
		name := strings.TrimPrefix(attrs.Name, dir)
		minTXID, maxTXID, ok := storage.ParseFileName(name)
		if !ok || name != storage.FileName(minTXID, maxTXID) {
			continue
		}
		infos = append(infos, &ltx.FileInfo{
			Level:     level,
			MinTXID:   minTXID,
			MaxTXID:   maxTXID,
			Size:      attrs.Size,
			CreatedAt: c.createdAt(attrs),
		})
	}

	storage.SortFiles(infos)
	return infos, nil
}

// createdAt returns the timestamp of an object: its metadata, else its
// creation time.
func (c *Client) createdAt(attrs *gcs.ObjectAttrs) time.Time {
	if v, ok := attrs.Metadata[storage.TimestampMetadata]; ok {
		t, err := storage.ParseTimestamp(v)
		if err == nil {
			return t
		}
		c.log.Warn("object has an unreadable timestamp; using its creation time",
			"destination", c.String(), "object", attrs.Name, "error", err)
	}
	return attrs.Created.UTC()
}

// OpenLTXFile opens a file for reading from offset: a ranged read on the
// server. A size of zero reads to the end of the file. A missing file is an
// error wrapping storage.ErrNotFound.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	if offset < 0 || size < 0 {
		return nil, c.errorf("open %s: invalid offset %d or size %d", desc, offset, size)
	}

	// The SDK streams the response body: it holds no buffer of its own.
	release, err := c.transfers.Acquire(ctx, 0)
	if err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	length := int64(-1)
	if size > 0 {
		length = size
	}
	name := c.ObjectName(level, minTXID, maxTXID)
	r, err := c.bkt.Object(name).NewRangeReader(ctx, offset, length)
	var gerr *googleapi.Error
	switch {
	case errors.As(err, &gerr) && gerr.Code == http.StatusRequestedRangeNotSatisfiable:
		// The file exists, and offset is at or past its end: nothing to
		// read, as from a file.
		return &reader{r: eofReader{}, release: release}, nil
	case errors.Is(err, gcs.ErrObjectNotExist):
		release()
		return nil, c.errorf("open %s: %w: object %s: %w", desc, storage.ErrNotFound, name, err)
	case err != nil:
		release()
		return nil, c.errorf("open %s (object %s): %w", desc, name, c.explain(err))
	}
	return &reader{r: r, release: release}, nil
}

// eofReader is the content past the end of a file.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
func (eofReader) Close() error             { return nil }

// reader gives the transfer slot back when it is closed.
type reader struct {
	r       io.ReadCloser
	release func()
	closed  bool
}

func (r *reader) Read(p []byte) (int, error) { return r.r.Read(p) }

func (r *reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	defer r.release()
	return r.r.Close()
}

// WriteLTXFile uploads the whole of r as one object, with createdAt (now if
// zero) in its litestream-timestamp metadata. The object appears only once
// the upload is complete; a failure of r, of the network or of ctx leaves
// nothing behind.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckWrite(ctx, level, minTXID, maxTXID); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if createdAt.IsZero() {
		createdAt = time.Now()
	}
	createdAt = createdAt.UTC()

	// The SDK buffers one chunk. A file known to be smaller gets a buffer
	// just large enough to go in a single request.
	chunk := c.partSize
	n, known, err := remaining(r)
	if err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if known && n < int64(chunk) {
		chunk = roundUp(int(n)+1, MinPartSize)
	}
	release, err := c.transfers.Acquire(ctx, int64(chunk))
	if err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	defer release()

	name := c.ObjectName(level, minTXID, maxTXID)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The SDK retries an upload's requests for as long as the context
	// lasts, which for a replica is for ever: the budget bounds them.
	budget := new(retryBudget)
	w := c.bkt.Object(name).Retryer(gcs.WithErrorFunc(budget.retry)).NewWriter(wctx)
	w.ChunkSize = chunk
	// A chunk that makes no progress is abandoned and sent again, rather
	// than waited for without end: one stalled attempt leaves time for
	// another.
	w.ChunkTransferTimeout = c.stall + time.Duration(chunk/minChunkRate)*time.Second
	w.ChunkRetryDeadline = 2 * w.ChunkTransferTimeout
	w.ProgressFunc = budget.progress
	w.ContentType = "application/octet-stream"
	w.Metadata = map[string]string{storage.TimestampMetadata: storage.FormatTimestamp(createdAt)}

	written, err := io.Copy(w, r)
	if err != nil {
		// Cancelling the upload before Close keeps it from being committed.
		cancel()
		_ = w.Close()
		return nil, c.errorf("write %s (object %s): %w", desc, name, c.explain(err))
	}
	if err := w.Close(); err != nil {
		var gerr *googleapi.Error
		if errors.As(err, &gerr) && gerr.Code == http.StatusNotFound {
			// An upload finds nothing else missing.
			err = fmt.Errorf("bucket %q does not exist: create it or fix the bucket name: %w", c.bucket, err)
		}
		return nil, c.errorf("write %s (object %s): %w", desc, name, c.explain(err))
	}
	size := written
	if attrs := w.Attrs(); attrs != nil {
		size = attrs.Size
	}
	return &ltx.FileInfo{
		Level:     level,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Size:      size,
		CreatedAt: createdAt,
	}, nil
}

// retryBudget bounds the retries of one upload to those of any other
// request, storage.DefaultRetry.Attempts tries, counted afresh after each
// chunk of a resumable upload that is stored.
type retryBudget struct {
	failures atomic.Int64
}

// retry reports whether to try a failed upload request again.
func (b *retryBudget) retry(err error) bool {
	return gcs.ShouldRetry(err) && b.failures.Add(1) < int64(storage.DefaultRetry.Attempts)
}

// progress is told the bytes stored so far.
func (b *retryBudget) progress(int64) { b.failures.Store(0) }

// remaining returns how many bytes r has left when it can tell (an *os.File
// of a regular file, a *bytes.Reader, ...), leaving its position unchanged.
func remaining(r io.Reader) (n int64, known bool, err error) {
	s, ok := r.(io.Seeker)
	if !ok {
		return 0, false, nil
	}
	cur, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, false, nil // a pipe, say: not seekable after all
	}
	end, err := s.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, false, nil
	}
	if _, err := s.Seek(cur, io.SeekStart); err != nil {
		return 0, false, fmt.Errorf("seek back to offset %d of the source: %w", cur, err)
	}
	return max(end-cur, 0), true, nil
}

// DeleteLTXFiles deletes the given objects, several at a time. Objects
// already gone are not an error.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	return storage.DeleteEach(ctx, files, deleteConcurrency, c.errorf, func(gctx context.Context, info *ltx.FileInfo) error {
		name := c.ObjectName(info.Level, info.MinTXID, info.MaxTXID)
		err := c.bkt.Object(name).Delete(gctx)
		if err == nil || errors.Is(err, gcs.ErrObjectNotExist) {
			return nil
		}
		return c.errorf("delete %s (object %s): %w", storage.Describe(info.Level, info.MinTXID, info.MaxTXID), name, c.explain(err))
	})
}
