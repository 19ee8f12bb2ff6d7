package s3

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

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
// safely: a record write repeated after it succeeded is refused as a
// conflict (see record.go). (Cancelled contexts were ruled out by an
// earlier check.)
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
