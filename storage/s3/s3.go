// Package s3 is the replica backend for Amazon S3 and S3-compatible stores
// (MinIO, Cloudflare R2, Backblaze B2, Tigris, DigitalOcean Spaces, ...).
//
// A replica is a bucket and a key prefix, s3://BUCKET/PATH, laid out as
// Litestream 0.5 lays it out, so either tool restores the other's replicas:
//
//	PATH/<level as 4 lower-case hex digits>/<minTXID>-<maxTXID>.ltx
//
// PATH may not be empty. Litestream names the objects of a replica at the
// top of a bucket "/0000/...", with a leading slash, which AWS keeps but
// MinIO and other S3-compatible stores drop when they store an object (not
// when they list a prefix): no layout there would be compatible everywhere.
//
// Each object carries its LTX header timestamp as the user metadata
// litestream-timestamp (RFC 3339, UTC, to the millisecond or finer). S3
// listings do not include user metadata, so LTXFiles reads it with a HEAD
// request per object, 16 at a time, and remembers it for as long as the
// object is unchanged (same ETag, size and last-modified time); an object
// without the metadata (written by another tool) is dated by its
// last-modified time, to the second.
//
// # Config keys
//
// The URL's query parameters (endpoint, region, forcePathStyle, skipVerify)
// are read too; keys win over them.
//
//	endpoint           S3-compatible endpoint URL; https:// when no scheme is given
//	region             the bucket's region (see below)
//	force-path-style   path-style requests; default true with an endpoint
//	skip-verify        do not verify the server's TLS certificate; default false
//	part-size          multipart part size, and the largest file sent in one PUT;
//	                   default 5MiB, at least 5MiB
//	concurrency        parts of one upload in flight at once; default 5
//	checksums          when-required (default with an endpoint) or when-supported
//	                   (the AWS SDK's default, the default on AWS): whether the SDK
//	                   adds CRC checksums to every upload and validates them on
//	                   download; several S3-compatible stores reject them
//	sse-customer-key   SSE-C: a 32-byte AES-256 key, base64 (44 characters, as
//	                   `openssl rand -base64 32` prints) or 32 raw characters
//	sse-kms-key-id     SSE-KMS: the KMS key to encrypt new objects with
//	access-key-id, secret-access-key   static credentials
//	bucket, path       for a replica given without a URL
//
// Secrets (the credentials, sse-customer-key) are read from config keys
// only, never from the URL: a URL whose query holds one is an error. As in Litestream, the URL's host may also be a
// provider's host form, which implies the endpoint and region:
// BUCKET.s3.REGION.amazonaws.com, BUCKET.s3.REGION.backblazeb2.com,
// BUCKET.REGION.digitaloceanspaces.com, BUCKET.s3.REGION.scw.cloud,
// BUCKET.REGION.linodeobjects.com, BUCKET.s3.filebase.com.
//
// # Credentials
//
// The first complete pair of: the access-key-id and secret-access-key
// keys; WALSHIP_ACCESS_KEY_ID and WALSHIP_SECRET_ACCESS_KEY;
// LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY; else the AWS
// SDK's default chain (AWS_* variables, shared config and credentials
// files, SSO, web identity, ECS and EC2 roles). Credentials never appear in
// errors, logs or String.
//
// # Region
//
// The region key (or URL parameter) when set. Else, with an endpoint,
// us-east-1, what S3-compatible stores expect (AWS_REGION is not consulted,
// as in Litestream). Else, on AWS, the SDK's configured region (AWS_REGION,
// the profile's) when there is one, or else the bucket's own region, asked
// of S3 once, on first use (HeadBucket's x-amz-bucket-region); a lookup that
// fails is an error and is tried again by the next call.
//
// # TLS, retries, uploads
//
// Certificates are verified against the system's CAs and AWS_CA_BUNDLE
// unless skip-verify is set. Requests are retried by the SDK's standard
// retryer: up to 10 attempts with jittered exponential backoff of at most
// 20 s, on throttling (503 SlowDown, 429), 5xx, reset or refused connections
// and timeouts, always bounded by the caller's context. A download cut off
// mid-stream resumes where it stopped (pinned to the object's ETag). Every
// ranged GET must be answered with a 206 of the range asked for (its
// Content-Range is checked); any other answer is an error.
//
// A file of at most part-size bytes is sent with one PutObject; a larger
// one is a multipart upload of part-size parts, concurrency at a time,
// aborted if it fails. Seekable readers (an *os.File) are sent without
// being copied into memory, and the SDK can retry them. Either way an object
// is complete or absent. A process killed mid-upload leaves the parts of an
// unfinished multipart upload behind: a lifecycle rule that aborts
// incomplete multipart uploads after a day removes them.
package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/walship/walship/storage"
)

// Type is the value returned by Client.Type.
const Type = "s3"

const (
	// headConcurrency bounds the HEAD requests of one listing.
	headConcurrency = 16
	// maxDeleteKeys is the most keys one DeleteObjects request takes.
	maxDeleteKeys = 1000

	// Retries of the SDK's standard retryer.
	maxAttempts = 10
	maxBackoff  = 20 * time.Second

	// responseHeaderTimeout bounds the wait for a response once a request
	// has been sent, so a hung connection fails (and is retried) instead
	// of stalling a replica for ever.
	responseHeaderTimeout = 2 * time.Minute
	// maxIdleConnsPerHost keeps a listing's HEAD requests and an upload's
	// parts on reused connections.
	maxIdleConnsPerHost = 64

	// abortTimeout bounds the abort of a failed multipart upload, which
	// runs even when the upload's context was cancelled.
	abortTimeout = 30 * time.Second

	// maxResumes is how often a download cut off mid-stream is resumed in
	// a row without receiving a byte in between.
	maxResumes = 5
)

var _ storage.Client = (*Client)(nil)

// Client is a replica in an S3 bucket. It is safe for concurrent use.
type Client struct {
	opts      *options
	desc      string // s3://bucket/prefix
	transfers *storage.Transfers
	log       *slog.Logger
	cfg       aws.Config

	// lock guards api and uploader, which stay nil until the bucket's
	// region is known. It is a channel so that waiting for it respects a
	// context.
	lock     chan struct{}
	api      *s3.Client
	uploader *manager.Uploader

	// times remembers the timestamps read by HEAD requests, per level and
	// key, for as long as the object is unchanged.
	timesMu sync.Mutex
	times   map[int]map[string]objectTime
}

// objectTime is a remembered timestamp and the version of the object it
// was read from.
type objectTime struct {
	etag      string
	modified  time.Time
	size      int64
	createdAt time.Time
}

// hooks are what tests may change.
type hooks struct {
	// transport, if set, wraps the HTTP transport (which keeps its TLS
	// settings and AWS_CA_BUNDLE's CAs): to watch or disturb requests.
	transport func(http.RoundTripper) http.RoundTripper
}

// Open returns a client for the destination of spec: an s3:// URL and the
// config keys described in the package documentation. It reads the AWS SDK's
// configuration (environment, shared files) but makes no request; a bucket
// that is missing or unreachable is reported by the first operation.
func Open(ctx context.Context, spec storage.Spec) (*Client, error) {
	return open(ctx, spec, hooks{})
}

func open(ctx context.Context, spec storage.Spec, h hooks) (*Client, error) {
	o, err := parseSpec(spec, os.Getenv)
	if err != nil {
		return nil, err
	}
	c := &Client{
		opts:      o,
		desc:      "s3://" + o.bucket,
		transfers: spec.Transfers,
		lock:      make(chan struct{}, 1),
		times:     make(map[int]map[string]objectTime),
	}
	if o.prefix != "" {
		c.desc += "/" + o.prefix
	}
	c.log = spec.Log().With("replica", c.desc)

	cfg, err := sdkConfig(ctx, o.skipVerify)
	if err != nil {
		return nil, err
	}
	if o.region != "" {
		cfg.Region = o.region
	}
	if o.creds != "" {
		cfg.Credentials = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(o.accessKeyID, o.secretAccessKey, ""))
	}
	hc := cfg.HTTPClient.(*awshttp.BuildableClient)
	if h.transport != nil {
		cfg.HTTPClient = &http.Client{
			Transport: h.transport(hc.GetTransport()),
			// As the SDK's own client: a redirect is an answer.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	c.cfg = cfg
	if cfg.Region != "" {
		c.setAPI(cfg.Region)
	}
	return c, nil
}

// newRetryer is the SDK's standard retryer with more patience, no retry
// quota (a replica's upload loop must be able to retry for as long as an
// outage lasts), and more failures retried: 408 and 429 answers, and
// connections cut while a request is sent or its answer read.
func newRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = maxBackoff
		o.RateLimiter = ratelimit.None
		// A certificate that does not verify will not verify on the next
		// try either (the SDK would retry it as a connection error).
		o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(isUntrustedCertificate)}, o.Retryables...)
		o.Retryables = append(o.Retryables,
			retry.RetryableHTTPStatusCode{
				Codes: map[int]struct{}{http.StatusRequestTimeout: {}, http.StatusTooManyRequests: {}},
			},
			retry.IsErrorRetryableFunc(isCutConnection),
		)
	})
}

// isUntrustedCertificate reports whether err is a TLS certificate that
// failed verification.
func isUntrustedCertificate(err error) aws.Ternary {
	var verify *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &verify) || errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
}

// isCutConnection reports whether err is a connection that broke in the
// middle of an exchange. Every request this package sends can be repeated
// safely. (Cancelled contexts were ruled out by an earlier check.)
func isCutConnection(err error) aws.Ternary {
	var urlErr *url.Error
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		(errors.As(err, &urlErr) && errors.Is(urlErr, io.EOF)) {
		return aws.TrueTernary
	}
	return aws.UnknownTernary
}

// httpClient returns the SDK's HTTP client (which carries AWS_CA_BUNDLE's
// CAs, if set) with a response timeout, a larger idle pool, and, when
// skipVerify is set, no certificate verification.
func httpClient(base aws.HTTPClient, skipVerify bool) *awshttp.BuildableClient {
	bc, ok := base.(*awshttp.BuildableClient)
	if !ok {
		bc = awshttp.NewBuildableClient()
	}
	return bc.WithTransportOptions(func(tr *http.Transport) {
		tr.ResponseHeaderTimeout = responseHeaderTimeout
		tr.MaxIdleConnsPerHost = maxIdleConnsPerHost
		if skipVerify {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{}
			}
			tr.TLSClientConfig.InsecureSkipVerify = true
		}
	})
}

// sdk holds the AWS SDK configuration every S3 replica of the process starts
// from, loaded once per AWS_* environment (in practice once: tests change
// it), with one HTTP client per TLS setting, like net/http's
// DefaultTransport: a thousand replicas then share one pool of connections,
// one credential chain and one copy of the CA certificates (with
// AWS_CA_BUNDLE the SDK parses the bundle for each configuration it loads and
// each HTTP client it derives: ~150 KB a replica with the system's bundle).
var sdk struct {
	sync.Mutex
	byEnv map[string]*sdkBase
}

type sdkBase struct {
	cfg     aws.Config
	clients map[bool]*awshttp.BuildableClient // by skipVerify
}

// sdkConfig returns a copy of the process's SDK configuration whose HTTP
// client verifies certificates unless skipVerify.
func sdkConfig(ctx context.Context, skipVerify bool) (aws.Config, error) {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	slices.Sort(env)
	key := strings.Join(env, "\x00")
	sdk.Lock()
	defer sdk.Unlock()
	base := sdk.byEnv[key]
	if base == nil {
		cfg, err := config.LoadDefaultConfig(ctx, config.WithRetryer(newRetryer))
		if err != nil {
			return aws.Config{}, fmt.Errorf("s3 replica: load the AWS SDK configuration (AWS_* environment, ~/.aws/config): %w", err)
		}
		base = &sdkBase{cfg: cfg, clients: map[bool]*awshttp.BuildableClient{}}
		if sdk.byEnv == nil {
			sdk.byEnv = map[string]*sdkBase{}
		}
		sdk.byEnv[key] = base
	}
	hc := base.clients[skipVerify]
	if hc == nil {
		hc = httpClient(base.cfg.HTTPClient, skipVerify)
		base.clients[skipVerify] = hc
	}
	cfg := base.cfg.Copy()
	cfg.HTTPClient = hc
	return cfg, nil
}

// s3Options configures the SDK client for the replica's endpoint.
func (c *Client) s3Options(region string) func(*s3.Options) {
	return func(o *s3.Options) {
		o.Region = region
		if c.opts.endpoint != "" {
			o.BaseEndpoint = aws.String(c.opts.endpoint)
		}
		o.UsePathStyle = c.opts.forcePathStyle
		switch c.opts.checksums {
		case ChecksumsWhenRequired:
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		case ChecksumsWhenSupported:
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenSupported
		}
	}
}

// setAPI creates the SDK clients for region. The caller holds lock, or is
// Open.
func (c *Client) setAPI(region string) {
	c.api = s3.NewFromConfig(c.cfg, c.s3Options(region))
	checksums := c.api.Options().RequestChecksumCalculation
	c.uploader = manager.NewUploader(c.api, func(u *manager.Uploader) {
		u.PartSize = c.opts.partSize
		u.Concurrency = c.opts.concurrency
		u.RequestChecksumCalculation = checksums
		// The uploader would abort with the upload's context, which may be
		// cancelled; upload aborts with one of its own.
		u.LeavePartsOnError = true
	})
}

// sdk returns the SDK clients, looking up the bucket's region first if it
// is not known yet.
func (c *Client) sdk(ctx context.Context) (*s3.Client, *manager.Uploader, error) {
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	defer func() { <-c.lock }()
	if c.api == nil {
		region, err := c.lookUpRegion(ctx)
		if err != nil {
			return nil, nil, err
		}
		c.log.Info("found the bucket's region", "region", region)
		c.setAPI(region)
	}
	return c.api, c.uploader, nil
}

// lookUpRegion asks S3 for the bucket's region (HeadBucket answers with it
// even when access is denied).
func (c *Client) lookUpRegion(ctx context.Context) (string, error) {
	probe := s3.NewFromConfig(c.cfg, c.s3Options(DefaultRegion))
	region, err := manager.GetBucketRegion(ctx, probe, c.opts.bucket)
	var notFound manager.BucketNotFound
	switch {
	case errors.As(err, &notFound):
		return "", fmt.Errorf("look up the region of bucket %q: there is no such bucket on AWS S3: create it, or set endpoint: for another S3-compatible store", c.opts.bucket)
	case err != nil:
		return "", fmt.Errorf("look up the region of bucket %q (set region: to skip this): %w", c.opts.bucket, err)
	case region == "":
		return DefaultRegion, nil
	}
	return region, nil
}

// Type returns "s3".
func (c *Client) Type() string { return Type }

// String returns s3://bucket/prefix. It never contains credentials.
func (c *Client) String() string { return c.desc }

// Bucket returns the replica's bucket.
func (c *Client) Bucket() string { return c.opts.bucket }

// Prefix returns the replica's key prefix, without slashes at either end
// ("" for the top of the bucket).
func (c *Client) Prefix() string { return c.opts.prefix }

// Key returns the object key of an LTX file.
func (c *Client) Key(level int, minTXID, maxTXID ltx.TXID) string {
	return storage.HexLevelDir(c.opts.prefix, level) + storage.FileName(minTXID, maxTXID)
}

// errorf prefixes an error with the replica.
func (c *Client) errorf(format string, args ...any) error {
	return fmt.Errorf("replica %s: "+format, append([]any{c.desc}, args...)...)
}

// opError describes a failed operation, with advice for the failures an
// operator can fix.
func (c *Client) opError(op string, err error) error {
	if h := c.hint(err); h != "" {
		return c.errorf("%s: %w (%s)", op, err, h)
	}
	return c.errorf("%s: %w", op, err)
}

func (c *Client) hint(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "InvalidClientTokenId":
			return "check the credentials, " + c.credentialsSource()
		case "AccessDenied", "Forbidden":
			return "the credentials, " + c.credentialsSource() + ", may lack permission for this bucket and prefix"
		case "NoSuchBucket":
			return fmt.Sprintf("bucket %q does not exist: create it first", c.opts.bucket)
		case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
			return "the bucket is in another region: set region:"
		case "InvalidRequest":
			if c.opts.sse.customerKey != "" && strings.HasPrefix(c.opts.endpoint, "http://") {
				return "stores accept sse-customer-key only over TLS: use an https:// endpoint"
			}
		}
	}
	if isUntrustedCertificate(err) == aws.FalseTernary {
		return "the server's TLS certificate is not trusted: add its CA with AWS_CA_BUNDLE, or set skip-verify: true"
	}
	if strings.Contains(err.Error(), "failed to retrieve credentials") || strings.Contains(err.Error(), "no EC2 IMDS role") {
		return "no credentials found: set access-key-id and secret-access-key, WALSHIP_ACCESS_KEY_ID and WALSHIP_SECRET_ACCESS_KEY, or AWS credentials"
	}
	return ""
}

// credentialsSource names where the credentials come from, for advice.
func (c *Client) credentialsSource() string {
	if c.opts.creds != "" {
		return "from the " + c.opts.creds
	}
	return "from the AWS SDK's default chain (AWS_* environment, ~/.aws, instance or task role)"
}

// LTXFiles lists the files of one level, sorted by MinTXID then MaxTXID,
// with CreatedAt from the litestream-timestamp metadata (or the
// last-modified time, to the second, where it is missing). Keys that are not
// LTX file names are ignored; a level with no objects is an empty list.
func (c *Client) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	op := fmt.Sprintf("list level %d", level)
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("%s: %w", op, err)
	}
	api, _, err := c.sdk(ctx)
	if err != nil {
		return nil, c.errorf("%s: %w", op, err)
	}

	dir := storage.HexLevelDir(c.opts.prefix, level)
	var objs []listedObject
	pages := s3.NewListObjectsV2Paginator(api, &s3.ListObjectsV2Input{
		Bucket:    aws.String(c.opts.bucket),
		Prefix:    aws.String(dir),
		Delimiter: aws.String("/"),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, c.opError(op, err)
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			name, ok := strings.CutPrefix(key, dir)
			if !ok || strings.Contains(name, "/") {
				continue
			}
			minTXID, maxTXID, ok := storage.ParseFileName(name)
			if !ok {
				continue
			}
			objs = append(objs, listedObject{
				key: key,
				info: &ltx.FileInfo{
					Level:   level,
					MinTXID: minTXID,
					MaxTXID: maxTXID,
					Size:    aws.ToInt64(obj.Size),
				},
				etag:     aws.ToString(obj.ETag),
				modified: aws.ToTime(obj.LastModified).UTC(),
			})
		}
	}

	infos, err := c.dateObjects(ctx, api, level, objs)
	if err != nil {
		return nil, err
	}
	storage.SortFiles(infos)
	return infos, nil
}

// listedObject is an LTX file as a listing shows it.
type listedObject struct {
	key      string
	info     *ltx.FileInfo
	etag     string
	modified time.Time
}

// dateObjects sets the CreatedAt of listed files: remembered, or read with
// HEAD requests, headConcurrency at a time. Files deleted since the listing
// are dropped.
func (c *Client) dateObjects(ctx context.Context, api *s3.Client, level int, objs []listedObject) ([]*ltx.FileInfo, error) {
	c.timesMu.Lock()
	known := c.times[level]
	c.timesMu.Unlock()

	var mu sync.Mutex // guards seen and infos
	seen := make(map[string]objectTime, len(objs))
	infos := make([]*ltx.FileInfo, 0, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(headConcurrency)
	for _, obj := range objs {
		version := objectTime{etag: obj.etag, modified: obj.modified, size: obj.info.Size}
		if t, ok := known[obj.key]; ok && !version.modified.IsZero() && t.etag == version.etag && t.modified.Equal(version.modified) && t.size == version.size {
			obj.info.CreatedAt = t.createdAt
			mu.Lock()
			seen[obj.key] = t
			infos = append(infos, obj.info)
			mu.Unlock()
			continue
		}
		g.Go(func() error {
			createdAt, exists, err := c.headCreatedAt(gctx, api, obj)
			if err != nil || !exists {
				return err
			}
			obj.info.CreatedAt = createdAt
			version.createdAt = createdAt
			mu.Lock()
			defer mu.Unlock()
			if !version.modified.IsZero() {
				seen[obj.key] = version
			}
			infos = append(infos, obj.info)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	// What was not seen is gone: forget it.
	c.timesMu.Lock()
	c.times[level] = seen
	c.timesMu.Unlock()
	return infos, nil
}

// headCreatedAt reads an object's timestamp metadata. exists is false when
// the object was deleted since it was listed.
func (c *Client) headCreatedAt(ctx context.Context, api *s3.Client, obj listedObject) (createdAt time.Time, exists bool, err error) {
	desc := storage.Describe(obj.info.Level, obj.info.MinTXID, obj.info.MaxTXID)
	in := &s3.HeadObjectInput{Bucket: aws.String(c.opts.bucket), Key: aws.String(obj.key)}
	c.opts.sse.headObject(in)
	out, err := api.HeadObject(ctx, in)
	if isNotFound(err) {
		return time.Time{}, false, nil
	} else if err != nil {
		return time.Time{}, false, c.opError("read the timestamp of "+desc, err)
	}
	for k, v := range out.Metadata {
		if !strings.EqualFold(k, storage.TimestampMetadata) {
			continue
		}
		t, err := storage.ParseTimestamp(v)
		if err == nil {
			return t, true, nil
		}
		c.log.Warn("unreadable timestamp metadata; using the object's last-modified time", "file", desc, "error", err)
		break
	}
	modified := obj.modified
	if modified.IsZero() {
		modified = aws.ToTime(out.LastModified)
	}
	return modified.Truncate(time.Second).UTC(), true, nil
}

// OpenLTXFile opens a file for reading from offset, with a ranged GET. A
// size of zero reads to the end of the file; otherwise at most size bytes
// are returned. A missing file is an error wrapping storage.ErrNotFound.
// The reader uses ctx until it is closed, and holds a transfer slot until
// then.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	if offset < 0 || size < 0 {
		return nil, c.errorf("open %s: invalid offset %d or size %d", desc, offset, size)
	}
	api, _, err := c.sdk(ctx)
	if err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	release, err := c.transfers.Acquire(ctx, 0)
	if err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	r := &objectReader{
		c:       c,
		api:     api,
		ctx:     ctx,
		key:     c.Key(level, minTXID, maxTXID),
		desc:    desc,
		pos:     offset,
		end:     -1,
		release: release,
	}
	if size > 0 {
		r.end = offset + size
	}
	if err := r.open(); err != nil {
		release()
		if isNotFound(err) {
			return nil, c.errorf("open %s: %w: %w", desc, storage.ErrNotFound, err)
		}
		return nil, c.opError("open "+desc, err)
	}
	return r, nil
}

// objectReader reads a range of an object and resumes the read, from where
// it stopped and pinned to the same version of the object, when the
// connection breaks.
type objectReader struct {
	c    *Client
	api  *s3.Client
	ctx  context.Context
	key  string
	desc string

	pos, end int64  // next offset; end of the range (exclusive), or -1
	etag     string // the object's version, once known
	body     io.ReadCloser
	failures int   // resumes since the last byte read
	err      error // the error that ended the read, returned ever after

	release func()
	closed  bool
}

// open sends the GET for the rest of the range.
func (r *objectReader) open() error {
	in := &s3.GetObjectInput{Bucket: aws.String(r.c.opts.bucket), Key: aws.String(r.key)}
	switch {
	case r.end >= 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", r.pos, r.end-1))
	case r.pos > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", r.pos))
	}
	if r.etag != "" {
		in.IfMatch = aws.String(r.etag)
	}
	r.c.opts.sse.getObject(in)
	out, err := r.api.GetObject(r.ctx, in)
	if isInvalidRange(err) {
		// The offset is at or past the end of the object: nothing to read.
		r.body = io.NopCloser(bytes.NewReader(nil))
		return nil
	} else if err != nil {
		return err
	}
	// A server (or a proxy) that ignores the Range header, or serves
	// another range, would hand the caller the wrong bytes.
	status := 0
	if resp, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); ok {
		status = resp.StatusCode
	}
	if err := checkRange(status, aws.ToString(out.ContentRange), r.pos, r.end); err != nil {
		_ = out.Body.Close()
		return err
	}
	r.body = out.Body
	if r.etag == "" {
		r.etag = aws.ToString(out.ETag)
	}
	return nil
}

// errBadRange is the error of a GET answered with other bytes than those
// asked for.
var errBadRange = errors.New("the server did not answer with the range asked for")

// checkRange checks the status and Content-Range of the answer to a GET
// from start to end (exclusive; -1 for the end of the object). A GET of a
// whole object must be a 200; any other must be a 206 of the bytes asked
// for, or of fewer when the object ends sooner.
func checkRange(status int, contentRange string, start, end int64) error {
	if start == 0 && end < 0 {
		if status != http.StatusOK {
			return fmt.Errorf("%w: asked for the whole object, got HTTP status %d", errBadRange, status)
		}
		return nil
	}
	want := fmt.Sprintf("bytes %d-", start)
	if end >= 0 {
		want += fmt.Sprint(end - 1)
	}
	if status != http.StatusPartialContent {
		return fmt.Errorf("%w: asked for %s, got HTTP status %d instead of 206 (does the store support ranged reads?)", errBadRange, want, status)
	}
	bad := func() error {
		return fmt.Errorf("%w: asked for %s, got Content-Range %q", errBadRange, want, contentRange)
	}
	// bytes FIRST-LAST/TOTAL, TOTAL possibly "*" (unknown).
	spec, ok := strings.CutPrefix(contentRange, "bytes ")
	if !ok {
		return bad()
	}
	span, total, ok := strings.Cut(spec, "/")
	if !ok {
		return bad()
	}
	first, last, ok := strings.Cut(span, "-")
	if !ok {
		return bad()
	}
	a, err1 := strconv.ParseInt(first, 10, 64)
	b, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || a != start || b < a {
		return bad()
	}
	size := int64(-1)
	if total != "*" {
		n, err := strconv.ParseInt(total, 10, 64)
		if err != nil || b >= n {
			return bad()
		}
		size = n
	}
	switch {
	case end >= 0 && b == end-1:
	case end >= 0 && b < end-1 && b == size-1: // the object ends sooner
	case end < 0 && (b == size-1 || size < 0):
	default:
		return bad()
	}
	return nil
}

func (r *objectReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, r.c.errorf("read %s: reader is closed", r.desc)
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.end >= 0 && r.pos >= r.end {
		return 0, io.EOF
	}
	for {
		n, err := r.body.Read(p)
		r.pos += int64(n)
		if n > 0 {
			r.failures = 0
		}
		if err == nil || err == io.EOF {
			return n, err
		}
		if rerr := r.resume(err); rerr != nil {
			r.err = r.c.errorf("read %s at byte %d: %w", r.desc, r.pos, rerr)
			return n, r.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// resume reopens the object at the current offset after a read failed
// with readErr, after a short jittered pause. It returns an error when it
// gives up.
func (r *objectReader) resume(readErr error) error {
	if r.ctx.Err() != nil || r.failures >= maxResumes {
		return readErr
	}
	r.failures++
	_ = r.body.Close()
	wait := min(100*time.Millisecond<<r.failures, 5*time.Second)
	t := time.NewTimer(time.Duration(rand.Int64N(int64(wait) + 1)))
	select {
	case <-r.ctx.Done():
		t.Stop()
		r.body = io.NopCloser(bytes.NewReader(nil))
		return fmt.Errorf("%w (%w)", readErr, r.ctx.Err())
	case <-t.C:
	}
	if err := r.open(); err != nil {
		r.body = io.NopCloser(bytes.NewReader(nil))
		r.failures = maxResumes // an error answer is final
		return fmt.Errorf("%w; resuming the download failed: %w", readErr, err)
	}
	r.c.log.Debug("resumed an interrupted download", "file", r.desc, "offset", r.pos, "error", readErr)
	return nil
}

// Close ends the download and frees its transfer slot.
func (r *objectReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.body.Close()
	r.release()
	return err
}

// WriteLTXFile stores the whole of r as the given file, with createdAt (the
// current time if zero) as its litestream-timestamp metadata. A file of at
// most part-size bytes is one PutObject, larger ones a multipart upload;
// both are atomic.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckFile(level, minTXID, maxTXID); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if createdAt.IsZero() {
		createdAt = time.Now()
	}
	createdAt = createdAt.UTC()
	api, uploader, err := c.sdk(ctx)
	if err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}

	in := &s3.PutObjectInput{
		Bucket:      aws.String(c.opts.bucket),
		Key:         aws.String(c.Key(level, minTXID, maxTXID)),
		ContentType: aws.String("application/octet-stream"),
		Metadata:    map[string]string{storage.TimestampMetadata: storage.FormatTimestamp(createdAt)},
	}
	c.opts.sse.putObject(in)
	n, err := c.upload(ctx, api, uploader, in, r)
	if err != nil {
		return nil, c.opError("write "+desc, err)
	}
	return &ltx.FileInfo{
		Level:     level,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Size:      n,
		CreatedAt: createdAt,
	}, nil
}

// upload sends r as in's object and returns its size. It holds a transfer
// slot, with the memory the upload buffers, while it runs.
func (c *Client) upload(ctx context.Context, api *s3.Client, uploader *manager.Uploader, in *s3.PutObjectInput, r io.Reader) (int64, error) {
	body, size, ok, err := seekable(r)
	if err != nil {
		return 0, err
	}
	if ok {
		// Nothing is buffered, unless a multipart upload of a reader that
		// cannot ReadAt has to copy its parts.
		multipart := size > c.opts.partSize
		var buffered int64
		if _, readerAt := body.(io.ReaderAt); multipart && !readerAt {
			buffered = c.multipartMemory()
		}
		release, err := c.transfers.Acquire(ctx, buffered)
		if err != nil {
			return 0, err
		}
		defer release()
		in.Body = body
		if !multipart {
			in.ContentLength = aws.Int64(size)
			_, err = api.PutObject(ctx, in)
			return size, err
		}
		return size, c.multipart(ctx, api, uploader, in)
	}

	// Not seekable: read up to one part to learn whether the file fits in
	// one PUT, which can then be retried from the buffer.
	release, err := c.transfers.Acquire(ctx, c.opts.partSize)
	if err != nil {
		return 0, err
	}
	first, err := io.ReadAll(io.LimitReader(r, c.opts.partSize+1))
	if err != nil {
		release()
		return 0, fmt.Errorf("read the file to upload: %w", err)
	}
	if int64(len(first)) <= c.opts.partSize {
		defer release()
		in.Body = bytes.NewReader(first)
		in.ContentLength = aws.Int64(int64(len(first)))
		_, err = api.PutObject(ctx, in)
		return int64(len(first)), err
	}
	// Larger: trade the budget for a multipart upload's. Never hold both:
	// two uploads each holding one budget and waiting for the other could
	// wait for ever.
	release()
	if release, err = c.transfers.Acquire(ctx, c.multipartMemory()); err != nil {
		return 0, err
	}
	defer release()
	rest := &countingReader{r: r}
	in.Body = io.MultiReader(bytes.NewReader(first), rest)
	err = c.multipart(ctx, api, uploader, in)
	return int64(len(first)) + rest.n, err
}

// multipartMemory is what a multipart upload of a reader without ReadAt
// holds: a buffer per part in flight, the one being filled, and the first
// part read to decide on a multipart upload.
func (c *Client) multipartMemory() int64 {
	return c.opts.partSize * int64(c.opts.concurrency+2)
}

// multipart runs a multipart upload, and aborts it if it fails, so that
// its parts do not linger.
func (c *Client) multipart(ctx context.Context, api *s3.Client, uploader *manager.Uploader, in *s3.PutObjectInput) error {
	_, err := uploader.Upload(ctx, in)
	var failed manager.MultiUploadFailure
	if err != nil && errors.As(err, &failed) && failed.UploadID() != "" {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_, aerr := api.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket:   in.Bucket,
			Key:      in.Key,
			UploadId: aws.String(failed.UploadID()),
		})
		if aerr != nil && !isNoSuchUpload(aerr) {
			c.log.Warn("could not abort a failed multipart upload: its parts stay in the bucket until a lifecycle rule removes them",
				"key", aws.ToString(in.Key), "upload_id", failed.UploadID(), "error", aerr)
		}
	}
	return err
}

// seekable returns r as a reader of its remaining bytes, positioned at
// its start, and their number, when r can seek. A reader that can also
// ReadAt (an *os.File, a *bytes.Reader) becomes an *io.SectionReader, which
// the multipart uploader reads in parallel without copying.
func seekable(r io.Reader) (body io.ReadSeeker, size int64, ok bool, err error) {
	s, ok := r.(io.ReadSeeker)
	if !ok {
		return nil, 0, false, nil
	}
	pos, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, 0, false, nil // a pipe, say: read it as a stream
	}
	end, err := s.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, 0, false, nil
	}
	if _, err := s.Seek(pos, io.SeekStart); err != nil {
		return nil, 0, false, fmt.Errorf("seek the file to upload back to %d: %w", pos, err)
	}
	if ra, ok := r.(io.ReaderAt); ok {
		return io.NewSectionReader(ra, pos, end-pos), end - pos, true, nil
	}
	return s, end - pos, true, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	return n, err
}

// DeleteLTXFiles removes the given files with DeleteObjects, up to 1000 per
// request. Files already gone are not an error; any file the store refuses
// to delete is.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	descs := make(map[string]string, len(files))
	keys := make([]string, 0, len(files))
	for _, f := range files {
		if f == nil {
			continue
		}
		desc := storage.Describe(f.Level, f.MinTXID, f.MaxTXID)
		if err := storage.CheckLevel(f.Level); err != nil {
			return c.errorf("delete %s: %w", desc, err)
		}
		key := c.Key(f.Level, f.MinTXID, f.MaxTXID)
		if _, dup := descs[key]; !dup {
			descs[key] = desc
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	api, _, err := c.sdk(ctx)
	if err != nil {
		return c.errorf("delete %d files: %w", len(keys), err)
	}

	for batch := range slices.Chunk(keys, maxDeleteKeys) {
		objs := make([]types.ObjectIdentifier, len(batch))
		for i, key := range batch {
			objs[i] = types.ObjectIdentifier{Key: aws.String(key)}
		}
		out, err := api.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(c.opts.bucket),
			Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
		}, withContentMD5)
		if err != nil {
			return c.opError(fmt.Sprintf("delete %d files from %s", len(batch), descs[batch[0]]), err)
		}
		var errs []error
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" {
				continue
			}
			what := descs[aws.ToString(e.Key)]
			if what == "" {
				what = aws.ToString(e.Key)
			}
			errs = append(errs, fmt.Errorf("%s: %s: %s", what, aws.ToString(e.Code), aws.ToString(e.Message)))
		}
		if len(errs) > 0 {
			return c.errorf("delete %d of %d files failed: %w", len(errs), len(batch), errors.Join(errs...))
		}
	}
	return nil
}

// withContentMD5 adds a Content-MD5 header to a request (DeleteObjects),
// which many S3-compatible stores require while the SDK now sends a CRC
// checksum instead.
func withContentMD5(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Build.Add(middleware.BuildMiddlewareFunc("WalshipContentMD5", addContentMD5), middleware.After)
	})
}

func addContentMD5(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
	req, ok := in.Request.(*smithyhttp.Request)
	if !ok || req.Header.Get("Content-MD5") != "" {
		return next.HandleBuild(ctx, in)
	}
	if body := req.GetStream(); body != nil && req.IsStreamSeekable() {
		h := md5.New()
		if _, err := io.Copy(h, body); err != nil {
			return middleware.BuildOutput{}, middleware.Metadata{}, fmt.Errorf("compute Content-MD5: %w", err)
		}
		if err := req.RewindStream(); err != nil {
			return middleware.BuildOutput{}, middleware.Metadata{}, fmt.Errorf("compute Content-MD5: %w", err)
		}
		req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(h.Sum(nil)))
	}
	return next.HandleBuild(ctx, in)
}

// isNotFound reports whether err says the object does not exist (and not
// that the bucket does not).
func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		case "NoSuchBucket":
			return false
		}
	}
	var resp *awshttp.ResponseError
	return errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusNotFound
}

// isInvalidRange reports whether err is the answer to a range that starts
// at or past the end of the object.
func isInvalidRange(err error) bool {
	if err == nil {
		return false
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidRange" {
		return true
	}
	var resp *awshttp.ResponseError
	return errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable
}

func isNoSuchUpload(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchUpload"
}
