// Package s3 is the replica backend for Amazon S3 and S3-compatible stores
// (MinIO, Cloudflare R2, Backblaze B2, Tigris, DigitalOcean Spaces, ...).
//
// A replica is a bucket and a key prefix, s3://BUCKET/PATH, laid out as
// Litestream 0.5 lays it out, so each tool reads the other's replicas:
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
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; LITESTREAM_ACCESS_KEY_ID and
// LITESTREAM_SECRET_ACCESS_KEY, each read only when the AWS_* variable of
// its name is not set, as Litestream reads them; else the rest of the AWS
// SDK's default chain (shared config and credentials files, SSO, web
// identity, ECS and EC2 roles). Credentials never appear in errors, logs
// or String.
//
// # Storage class and encryption
//
//	storage-class           the storage class of the LTX files (STANDARD_IA, ...);
//	                        the bucket's default when unset
//	sse-customer-key-path   a file holding the SSE-C key (wins over sse-customer-key,
//	                        as in Litestream)
//	sse-customer-algorithm  AES256, the only one there is; anything else is an error
//
// # Alibaba OSS
//
// oss://BUCKET/PATH is a replica on Alibaba Cloud OSS, reached through its
// S3-compatible API: see [OSSBackend].
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
//
// # Records
//
// Records (the replica's owner, say) are objects PATH/<name>, written with
// conditional PUTs (If-None-Match: * to create, If-Match: <ETag> to
// replace), so that of two writers one wins. The store must honour both
// headers; a client checks once that it does, and refuses to write records
// to a store that answers 501 or ignores them (see record.go).
package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/superfly/ltx"

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

	// condLock guards condChecked, set once the store is known to honour
	// conditional writes (see checkConditionalWrites). A channel, as lock.
	condLock    chan struct{}
	condChecked bool
	// unconditionalWarned is set once conditional-writes: false was
	// logged.
	unconditionalWarned atomic.Bool

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
	return openOptions(ctx, spec, o, h)
}

// openOptions returns a client for the parsed settings o of spec.
func openOptions(ctx context.Context, spec storage.Spec, o *options, h hooks) (*Client, error) {
	c := &Client{
		opts:      o,
		desc:      o.scheme + "://" + o.bucket,
		transfers: spec.Transfers,
		lock:      make(chan struct{}, 1),
		condLock:  make(chan struct{}, 1),
		times:     make(map[int]map[string]objectTime),
	}
	if o.prefix != "" {
		c.desc += "/" + o.prefix
	}
	c.log = spec.Log().With("destination", c.desc)

	cfg, err := sdkConfig(ctx, o.skipVerify)
	if err != nil {
		return nil, err
	}
	if o.region != "" {
		cfg.Region = o.region
	}
	if o.creds != "" {
		cfg.Credentials = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(o.accessKeyID, o.secretAccessKey, o.sessionToken))
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

// Type returns "s3".
func (c *Client) Type() string { return Type }

// String returns s3://bucket/prefix (oss://bucket/prefix for Alibaba
// OSS). It never contains credentials.
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
		return "no credentials found: set access-key-id and secret-access-key, WALSHIP_ACCESS_KEY_ID and WALSHIP_SECRET_ACCESS_KEY, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY"
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
