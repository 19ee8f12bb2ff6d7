// Package azure implements a replica in Azure Blob Storage (URL scheme abs),
// in the layout of Litestream 0.5, so either tool restores the other's
// replicas:
//
//	<path>/ltx/<level>/<minTXID>-<maxTXID>.ltx
//
// Each blob carries its LTX header timestamp as the metadata
// "litestreamtimestamp" (Azure forbids dashes in metadata names), which
// listings read without an extra request per blob.
//
// # Destination
//
// The URL is abs://ACCOUNT@CONTAINER/PATH (Litestream's form) or
// abs://CONTAINER/PATH with the account in the account-name key or the
// AZURE_STORAGE_ACCOUNT environment variable. The config keys bucket and
// path override the container and the path of the URL. The blob service is
// https://ACCOUNT.blob.core.windows.net unless the endpoint key names
// another one (Azurite, sovereign clouds, private endpoints).
//
// # Credentials
//
// The first of these that is set is used:
//
//  1. the account-key key: the account's shared key;
//  2. the sas-token key (or a SAS pasted as the URL's query): a shared
//     access signature, which needs read, add, create, write, delete and
//     list permissions on the container;
//  3. the AZURE_STORAGE_ACCOUNT_KEY environment variable, then
//     LITESTREAM_AZURE_ACCOUNT_KEY (Litestream's name);
//  4. Microsoft Entra ID through azidentity's DefaultAzureCredential:
//     a service principal from AZURE_TENANT_ID, AZURE_CLIENT_ID and
//     AZURE_CLIENT_SECRET (or a certificate), workload identity, managed
//     identity, then the Azure CLI and Azure Developer CLI logins. The
//     identity needs the "Storage Blob Data Contributor" role; tokens are
//     sent to https endpoints only.
//
// Neither the key nor the SAS token ever appears in String, in errors or in
// logs.
//
// # Writes
//
// Blobs are written atomically: a reader sees the whole file or none. A
// seekable source (an *os.File, a bytes.Reader) of at most 32 MiB (or
// part-size, if larger) is sent in one Put Blob request, straight from the
// source, so the SDK can retry it by seeking back. A larger seekable source
// is staged in blocks of part-size read in place, concurrency at a time,
// then committed with one Put Block List; the block size grows past
// part-size when needed to stay within Azure's 50,000 blocks per blob.
// Any other reader is streamed in blocks of part-size, buffering at most
// part-size × concurrency bytes, and committed at the end; such a stream is
// limited to 50,000 blocks (195 GiB at the default part size).
//
// Requests are retried by the SDK (throttling, 5xx answers, connection
// errors and timeouts) with exponential backoff and jitter, always bounded
// by the caller's context.
package azure

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	azruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/walship/walship/storage"
)

// Type is the value returned by Client.Type, and the URL scheme.
const Type = "abs"

// Defaults of the config keys.
const (
	// DefaultPartSize is the block size of uploads in blocks (part-size).
	DefaultPartSize = 4 << 20
	// DefaultConcurrency is how many blocks of one upload, or how many
	// deletions, run at once (concurrency).
	DefaultConcurrency = 4
)

const (
	// singleUploadSize is the largest seekable source sent in one request
	// (unless part-size is larger).
	singleUploadSize = 32 << 20
	minPartSize      = 1 << 20
	maxPartSize      = blockblob.MaxStageBlockBytes
	// downloadRetries is how often a download that fails part way is
	// resumed from where it stopped.
	downloadRetries = 3
)

// Environment variables read for the account name and key.
const (
	EnvAccount              = "AZURE_STORAGE_ACCOUNT"
	EnvAccountKey           = "AZURE_STORAGE_ACCOUNT_KEY"
	EnvLitestreamAccountKey = "LITESTREAM_AZURE_ACCOUNT_KEY"
)

var _ storage.Client = (*Client)(nil)

// Client is a replica in one container of an Azure storage account, under a
// path. It holds no mutable state and is safe for concurrent use.
type Client struct {
	account   string // may be empty with a custom endpoint and no shared key
	container string
	prefix    string // without leading or trailing "/"
	endpoint  string // blob service URL, without trailing "/"

	partSize    int64
	concurrency int

	// auth says where the credentials came from, for logs and tests.
	auth string
	// secrets are strings that must never appear in a message.
	secrets []string

	cc        *container.Client
	transfers *storage.Transfers
	log       *slog.Logger
}

// config is what Open reads from a spec.
type config struct {
	account, container, prefix, endpoint string
	accountKey, sasToken                 string
	keySource                            string
	partSize                             int64
	concurrency                          int
	skipVerify                           bool
}

// Open returns a client for the destination of spec (abs://...). It does no
// network I/O: wrong credentials or a missing container show in the first
// request.
func Open(ctx context.Context, spec storage.Spec) (*Client, error) {
	cfg, err := parseSpec(spec)
	if err != nil {
		return nil, err
	}

	c := &Client{
		account:     cfg.account,
		container:   cfg.container,
		prefix:      cfg.prefix,
		endpoint:    cfg.endpoint,
		partSize:    cfg.partSize,
		concurrency: cfg.concurrency,
		transfers:   spec.Transfers,
		log:         spec.Log(),
	}
	for _, s := range []string{cfg.accountKey, cfg.sasToken} {
		if s != "" {
			c.secrets = append(c.secrets, s, url.QueryEscape(s), url.PathEscape(s))
		}
	}
	if cfg.sasToken != "" {
		if q, err := url.ParseQuery(cfg.sasToken); err == nil && q.Get("sig") != "" {
			sig := q.Get("sig")
			c.secrets = append(c.secrets, sig, url.QueryEscape(sig))
		}
	}

	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry: policy.RetryOptions{
			MaxRetries:    int32(storage.DefaultRetry.Attempts - 1),
			RetryDelay:    storage.DefaultRetry.Base,
			MaxRetryDelay: storage.DefaultRetry.Max,
		},
		Telemetry: policy.TelemetryOptions{ApplicationID: "walship"},
		Transport: newHTTPClient(cfg.skipVerify),
	}}
	if cfg.skipVerify {
		c.log.Warn("TLS certificate verification is off (skip-verify)", "replica", c.String())
	}

	containerURL := cfg.endpoint + "/" + url.PathEscape(cfg.container)
	switch {
	case cfg.accountKey != "":
		cred, err := container.NewSharedKeyCredential(cfg.account, cfg.accountKey)
		if err != nil {
			// The SDK's message names a byte offset only, never the key.
			return nil, c.errorf("the account key from %s is not valid base64: copy it again from the storage account's access keys", cfg.keySource)
		}
		c.auth = "shared key from " + cfg.keySource
		c.cc, err = container.NewClientWithSharedKeyCredential(containerURL, cred, opts)
		if err != nil {
			return nil, c.errorf("%w", c.sdkError(err))
		}
	case cfg.sasToken != "":
		c.auth = "SAS token"
		var err error
		c.cc, err = container.NewClientWithNoCredential(containerURL+"?"+cfg.sasToken, opts)
		if err != nil {
			return nil, c.errorf("%w", c.sdkError(err))
		}
	default:
		if !strings.HasPrefix(cfg.endpoint, "https://") {
			return nil, c.errorf("no account-key or sas-token is set, and Microsoft Entra ID credentials are only sent over https, not to %s: set account-key, sas-token or %s, or use an https endpoint", cfg.endpoint, EnvAccountKey)
		}
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, c.errorf("no account-key or sas-token is set, and Microsoft Entra ID credentials are not usable: %w", c.sdkError(err))
		}
		c.auth = "Microsoft Entra ID (DefaultAzureCredential)"
		c.cc, err = container.NewClient(containerURL, cred, opts)
		if err != nil {
			return nil, c.errorf("%w", c.sdkError(err))
		}
	}
	c.log.Debug("opened Azure Blob Storage replica", "replica", c.String(), "endpoint", c.endpoint, "credentials", c.auth)
	return c, nil
}

// responseHeaderTimeout bounds the wait for the answer to a request once it
// is sent, so that a connection that went silent fails (and is retried)
// instead of hanging. It does not limit how long a body takes to send or
// read.
const responseHeaderTimeout = 2 * time.Minute

// newHTTPClient returns the HTTP client of one replica: Go's default
// transport with a bound on silent servers, and optionally without TLS
// certificate verification.
func newHTTPClient(skipVerify bool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = responseHeaderTimeout
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify}
	return &http.Client{Transport: t}
}

// parseSpec reads and validates the destination and the keys of spec.
func parseSpec(spec storage.Spec) (config, error) {
	u := spec.URL
	if u == nil {
		return config{}, errors.New("abs replica: no URL")
	}
	if !strings.EqualFold(u.Scheme, Type) {
		return config{}, fmt.Errorf("abs replica: URL scheme is %q, not abs", u.Scheme)
	}
	cfg := config{container: u.Host, prefix: strings.Trim(u.Path, "/")}
	if u.User != nil {
		cfg.account = u.User.Username()
		if _, ok := u.User.Password(); ok {
			return config{}, fmt.Errorf("abs replica abs://%s@%s: a password in the URL is not read; put the account key in the account-key key or in %s", cfg.account, cfg.container, EnvAccountKey)
		}
	}
	if v := spec.Option("account-name", "account-name", "accountName"); v != "" {
		if cfg.account != "" && cfg.account != v {
			return config{}, fmt.Errorf("abs replica abs://%s@%s: the URL names account %q but account-name is %q: keep one", cfg.account, cfg.container, cfg.account, v)
		}
		cfg.account = v
	}
	if cfg.account == "" {
		cfg.account = os.Getenv(EnvAccount)
	}
	if v := spec.Option("bucket"); v != "" {
		cfg.container = v
	}
	if v, ok := spec.Keys["path"]; ok && v != "" {
		cfg.prefix = strings.Trim(v, "/")
	}

	// Messages below describe the destination as String will.
	dest := (&Client{account: cfg.account, container: cfg.container, prefix: cfg.prefix}).String()
	fail := func(format string, args ...any) (config, error) {
		return config{}, fmt.Errorf("abs replica %s: "+format, append([]any{dest}, args...)...)
	}

	if cfg.container == "" {
		return fail("no container: write abs://ACCOUNT@CONTAINER/PATH, or set bucket")
	}
	if err := checkContainerName(cfg.container); err != nil {
		return fail("%w", err)
	}

	cfg.endpoint = strings.TrimRight(spec.Option("endpoint", "endpoint"), "/")
	if cfg.endpoint == "" {
		if cfg.account == "" {
			return fail("no storage account: write abs://ACCOUNT@%s/PATH, or set account-name or %s", cfg.container, EnvAccount)
		}
		if !validAccountName(cfg.account) {
			return fail("storage account name %q is not valid: it has 3 to 24 lower-case letters and digits", cfg.account)
		}
		cfg.endpoint = "https://" + cfg.account + ".blob.core.windows.net"
	} else {
		e, err := url.Parse(cfg.endpoint)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.User != nil ||
			e.RawQuery != "" || e.ForceQuery || e.Fragment != "" || e.Opaque != "" {
			return fail("endpoint %s is not a URL like https://ACCOUNT.blob.core.windows.net or http://127.0.0.1:10000/devstoreaccount1 (no user, password or query: put the key in account-key, a SAS in sas-token)", endpointForMessage(cfg.endpoint))
		}
	}

	// Credentials, in order.
	if v := spec.Option("account-key", "account-key", "accountKey"); v != "" {
		cfg.accountKey, cfg.keySource = v, "account-key"
	} else if v := sasToken(spec); v != "" {
		cfg.sasToken = v
	} else if v := os.Getenv(EnvAccountKey); v != "" {
		cfg.accountKey, cfg.keySource = v, EnvAccountKey
	} else if v := os.Getenv(EnvLitestreamAccountKey); v != "" {
		cfg.accountKey, cfg.keySource = v, EnvLitestreamAccountKey
	}
	if cfg.accountKey != "" && cfg.account == "" {
		return fail("the account key from %s needs the storage account name: write abs://ACCOUNT@%s/PATH, or set account-name or %s", cfg.keySource, cfg.container, EnvAccount)
	}

	var err error
	if cfg.partSize, err = spec.SizeOption(DefaultPartSize, "part-size", "part-size", "partSize"); err != nil {
		return fail("%w", err)
	}
	if cfg.partSize < minPartSize || cfg.partSize > maxPartSize {
		return fail("part-size %d is out of range: use 1MiB to 4000MiB (default 4MiB)", cfg.partSize)
	}
	if cfg.concurrency, err = spec.IntOption(DefaultConcurrency, "concurrency", "concurrency"); err != nil {
		return fail("%w", err)
	}
	if cfg.skipVerify, err = spec.BoolOption(false, "skip-verify", "skip-verify", "skipVerify"); err != nil {
		return fail("%w", err)
	}
	return cfg, nil
}

// optionNames are the URL query parameters that are walship's own; any other
// query parameters, when they hold a "sig", are taken as a pasted SAS token.
var optionNames = []string{
	"account-name", "accountName", "account-key", "accountKey", "sas-token", "sasToken",
	"endpoint", "part-size", "partSize", "concurrency", "skip-verify", "skipVerify",
}

// sasToken returns the SAS token of spec, without a leading "?": the
// sas-token key or query parameter, else the URL's other query parameters
// when they are a SAS (they hold "sig").
func sasToken(spec storage.Spec) string {
	if v := spec.Option("sas-token", "sas-token", "sasToken"); v != "" {
		return strings.TrimPrefix(strings.TrimSpace(v), "?")
	}
	q := spec.URL.Query()
	if q.Get("sig") == "" {
		return ""
	}
	for _, n := range optionNames {
		q.Del(n)
	}
	return q.Encode()
}

// checkContainerName checks the rules of Azure for container names, so a
// typo fails at start-up with a clear message rather than with a 400.
func checkContainerName(name string) error {
	if name == "$root" || name == "$web" {
		return nil
	}
	const rules = "it has 3 to 63 lower-case letters, digits and single dashes, and starts and ends with a letter or digit"
	if len(name) < 3 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' || strings.Contains(name, "--") {
		return fmt.Errorf("container name %q is not valid: %s", name, rules)
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return fmt.Errorf("container name %q is not valid: %s", name, rules)
		}
	}
	return nil
}

func validAccountName(name string) bool {
	if len(name) < 3 || len(name) > 24 {
		return false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// Type returns "abs".
func (c *Client) Type() string { return Type }

// String returns abs://ACCOUNT@CONTAINER/PATH (abs://CONTAINER/PATH when the
// account is not known). It never holds credentials.
func (c *Client) String() string {
	var b strings.Builder
	b.WriteString("abs://")
	if c.account != "" {
		b.WriteString(c.account)
		b.WriteByte('@')
	}
	b.WriteString(c.container)
	if c.prefix != "" {
		b.WriteByte('/')
		b.WriteString(c.prefix)
	}
	return b.String()
}

// Container returns the container name.
func (c *Client) Container() string { return c.container }

// Path returns the path of the replica inside the container, without
// leading or trailing slashes.
func (c *Client) Path() string { return c.prefix }

// BlobName returns the name of the blob that holds one LTX file.
func (c *Client) BlobName(level int, minTXID, maxTXID ltx.TXID) string {
	return storage.LTXLevelDir(c.prefix, level) + storage.FileName(minTXID, maxTXID)
}

// errorf prefixes an error with the replica description.
func (c *Client) errorf(format string, args ...any) error {
	return fmt.Errorf("replica %s: "+format, append([]any{c}, args...)...)
}

// LTXFiles lists the files of one level, sorted by MinTXID then MaxTXID, in
// one request per 5,000 blobs (metadata included). CreatedAt is the
// litestreamtimestamp metadata; for a blob without it, the blob's creation
// time (else its last-modified time) to the second.
func (c *Client) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("list level %d: %w", level, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.errorf("list level %d: %w", level, err)
	}

	dir := storage.LTXLevelDir(c.prefix, level)
	pager := c.cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix:  &dir,
		Include: container.ListBlobsInclude{Metadata: true},
	})
	infos := []*ltx.FileInfo{}
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, c.errorf("list level %d (%s): %w", level, dir, c.sdkError(err))
		}
		for _, item := range page.Segment.BlobItems {
			if item == nil || item.Name == nil || item.Properties == nil {
				continue
			}
			base := strings.TrimPrefix(*item.Name, dir)
			if strings.Contains(base, "/") {
				continue // deeper than the level directory
			}
			minTXID, maxTXID, ok := storage.ParseFileName(base)
			if !ok {
				continue
			}
			infos = append(infos, &ltx.FileInfo{
				Level:     level,
				MinTXID:   minTXID,
				MaxTXID:   maxTXID,
				Size:      deref(item.Properties.ContentLength),
				CreatedAt: createdAt(item),
			})
		}
	}
	storage.SortFiles(infos)
	return infos, nil
}

// createdAt returns a listed blob's timestamp: its metadata (names are
// case-insensitive in Azure), else its creation or last-modified time.
func createdAt(item *container.BlobItem) time.Time {
	for k, v := range item.Metadata {
		if v != nil && strings.EqualFold(k, storage.TimestampMetadataAzure) {
			if t, err := storage.ParseTimestamp(*v); err == nil {
				return t
			}
		}
	}
	if t := item.Properties.CreationTime; t != nil && !t.IsZero() {
		return t.UTC().Truncate(time.Second)
	}
	if t := item.Properties.LastModified; t != nil {
		return t.UTC().Truncate(time.Second)
	}
	return time.Time{}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// OpenLTXFile opens a file for reading from offset, with a ranged request. A
// size of zero reads to the end of the file; otherwise at most size bytes
// are returned. A missing file is an error wrapping storage.ErrNotFound. A
// read that fails part way is resumed where it stopped, up to 3 times, and
// only while the blob is unchanged.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckLevel(level); err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}
	if offset < 0 || size < 0 {
		return nil, c.errorf("open %s: invalid offset %d or size %d", desc, offset, size)
	}
	release, err := c.transfers.Acquire(ctx, 0)
	if err != nil {
		return nil, c.errorf("open %s: %w", desc, err)
	}

	name := c.BlobName(level, minTXID, maxTXID)
	resp, err := c.cc.NewBlobClient(name).DownloadStream(ctx, &blob.DownloadStreamOptions{
		Range: blob.HTTPRange{Offset: offset, Count: size},
	})
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound):
		release()
		return nil, c.errorf("open %s: %w: blob %s: %w", desc, storage.ErrNotFound, name, c.sdkError(err))
	case bloberror.HasCode(err, bloberror.InvalidRange):
		// The blob exists and offset is at or past its end.
		release()
		return io.NopCloser(bytes.NewReader(nil)), nil
	case err != nil:
		release()
		return nil, c.errorf("open %s: %w", desc, c.sdkError(err))
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: downloadRetries})
	return &download{c: c, desc: desc, rc: body, release: sync.OnceFunc(release)}, nil
}

// download is the body of an open file. Closing it ends the transfer.
type download struct {
	c       *Client
	desc    string
	rc      io.ReadCloser
	release func()
}

func (d *download) Read(p []byte) (int, error) {
	n, err := d.rc.Read(p)
	if err != nil && err != io.EOF {
		err = d.c.errorf("read %s: %w", d.desc, d.c.sdkError(err))
	}
	return n, err
}

func (d *download) Close() error {
	defer d.release()
	return d.rc.Close()
}

// WriteLTXFile stores the whole of r as the given file, atomically, with
// createdAt (the current time if zero) as its litestreamtimestamp metadata.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	desc := storage.Describe(level, minTXID, maxTXID)
	if err := storage.CheckFile(level, minTXID, maxTXID); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.errorf("write %s: %w", desc, err)
	}
	if createdAt.IsZero() {
		createdAt = time.Now().Truncate(time.Millisecond)
	}
	createdAt = createdAt.UTC()

	u := target{
		bb:       c.cc.NewBlockBlobClient(c.BlobName(level, minTXID, maxTXID)),
		metadata: map[string]*string{storage.TimestampMetadataAzure: ptr(storage.FormatTimestamp(createdAt))},
		headers:  &blob.HTTPHeaders{BlobContentType: ptr("application/octet-stream")},
	}
	n, err := c.upload(ctx, u, r)
	if err != nil {
		return nil, c.errorf("write %s: %w", desc, c.sdkError(err))
	}
	return &ltx.FileInfo{
		Level:     level,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Size:      n,
		CreatedAt: createdAt,
	}, nil
}

// target is the blob being written, and what to store with it.
type target struct {
	bb       *blockblob.Client
	metadata map[string]*string
	headers  *blob.HTTPHeaders
}

// seekableSource is a source that uploads read in place, without buffers.
type seekableSource interface {
	io.ReaderAt
	io.Seeker
}

// upload writes r to u.bb and returns the number of bytes written.
func (c *Client) upload(ctx context.Context, u target, r io.Reader) (int64, error) {
	if src, ok := r.(seekableSource); ok {
		start, size, ok := extent(src)
		if ok && size <= max(singleUploadSize, c.partSize) {
			return size, c.uploadSingle(ctx, u, io.NewSectionReader(src, start, size))
		}
		if ok {
			return size, c.uploadBlocks(ctx, u, io.NewSectionReader(src, start, size))
		}
		// Not seekable after all (a pipe): stream it.
	}
	return c.uploadStream(ctx, u, r)
}

// extent returns the current offset of src and the number of bytes from
// there to the end, leaving src at the end. ok is false when src cannot
// seek.
func extent(src io.Seeker) (start, size int64, ok bool) {
	start, err := src.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, 0, false
	}
	end, err := src.Seek(0, io.SeekEnd)
	if err != nil || end < start {
		_, _ = src.Seek(start, io.SeekStart)
		return 0, 0, false
	}
	return start, end - start, true
}

// uploadSingle sends a seekable source in one Put Blob request.
func (c *Client) uploadSingle(ctx context.Context, u target, src *io.SectionReader) error {
	release, err := c.transfers.Acquire(ctx, 0)
	if err != nil {
		return err
	}
	defer release()
	_, err = u.bb.Upload(ctx, streaming.NopCloser(src), &blockblob.UploadOptions{
		Metadata:    u.metadata,
		HTTPHeaders: u.headers,
	})
	return err
}

// uploadBlocks stages a seekable source in blocks read in place, then
// commits them.
func (c *Client) uploadBlocks(ctx context.Context, u target, src *io.SectionReader) error {
	size := src.Size()
	blockSize := max(c.partSize, (size+blockblob.MaxBlocks-1)/blockblob.MaxBlocks)
	if blockSize > maxPartSize {
		return fmt.Errorf("%d bytes is more than a block blob holds", size)
	}
	release, err := c.transfers.Acquire(ctx, 0)
	if err != nil {
		return err
	}
	defer release()

	prefix := newBlockIDPrefix()
	ids := make([]string, (size+blockSize-1)/blockSize)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.concurrency)
	for i := range ids {
		ids[i] = blockID(prefix, uint32(i))
		if gctx.Err() != nil {
			break
		}
		off := int64(i) * blockSize
		block := io.NewSectionReader(src, off, min(blockSize, size-off))
		g.Go(func() error {
			_, err := u.bb.StageBlock(gctx, ids[i], streaming.NopCloser(block), nil)
			if err != nil {
				return fmt.Errorf("block %d of %d: %w", i+1, len(ids), c.sdkError(err))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err = u.bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{
		Metadata:    u.metadata,
		HTTPHeaders: u.headers,
	})
	return err
}

// sdkBlockIDLen is the length of a block ID, before base64, as the SDK's
// UploadStream makes them (blockblob/chunkwriting.go: a 16-byte UUID, the
// block number as 4 big-endian bytes, then zeros). Azure refuses a block
// whose ID has another length than the uncommitted blocks of its blob (400
// InvalidBlobOrBlock, until they expire after 7 days), so staged uploads use
// the same length as streamed ones, walship's and Litestream's: a blob where
// either crashed midway can still be written.
const sdkBlockIDLen = 64

// newBlockIDPrefix returns the random start of the block IDs of one
// upload, which keeps the blocks of concurrent writers of one blob apart.
func newBlockIDPrefix() [16]byte {
	var p [16]byte
	_, _ = rand.Read(p[:]) // never fails
	return p
}

// blockID returns the base64 ID of block n of an upload, laid out as the
// SDK's.
func blockID(prefix [16]byte, n uint32) string {
	var id [sdkBlockIDLen]byte
	copy(id[:], prefix[:])
	binary.BigEndian.PutUint32(id[len(prefix):], n)
	return base64.StdEncoding.EncodeToString(id[:])
}

// uploadStream streams r in blocks of part-size, buffering at most
// part-size × concurrency bytes, and commits them when r ends.
func (c *Client) uploadStream(ctx context.Context, u target, r io.Reader) (int64, error) {
	release, err := c.transfers.Acquire(ctx, c.partSize*int64(c.concurrency))
	if err != nil {
		return 0, err
	}
	defer release()
	cr := &countingReader{r: r}
	_, err = u.bb.UploadStream(ctx, cr, &blockblob.UploadStreamOptions{
		BlockSize:   c.partSize,
		Concurrency: c.concurrency,
		Metadata:    u.metadata,
		HTTPHeaders: u.headers,
	})
	return cr.n, err
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

// DeleteLTXFiles removes the given files, concurrency at a time. Files
// already gone are not an error. Blob snapshots of a file, if any, are
// deleted with it.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	for _, info := range files {
		if info == nil {
			continue
		}
		if err := storage.CheckLevel(info.Level); err != nil {
			return c.errorf("delete %s: %w", storage.Describe(info.Level, info.MinTXID, info.MaxTXID), err)
		}
	}
	if err := ctx.Err(); err != nil {
		return c.errorf("delete: %w", err)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.concurrency)
	for _, info := range files {
		if info == nil {
			continue
		}
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			name := c.BlobName(info.Level, info.MinTXID, info.MaxTXID)
			_, err := c.cc.NewBlobClient(name).Delete(gctx, &blob.DeleteOptions{
				DeleteSnapshots: ptr(blob.DeleteSnapshotsOptionTypeInclude),
			})
			if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
				return c.errorf("delete %s: %w", storage.Describe(info.Level, info.MinTXID, info.MaxTXID), c.sdkError(err))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return c.errorf("delete: %w", err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// sdkError is an error of the SDK reworded for an operator, with any secret
// removed from its text. It wraps the SDK's error.
type sdkError struct {
	msg string
	err error
}

func (e *sdkError) Error() string { return e.msg }
func (e *sdkError) Unwrap() error { return e.err }

// sasSig matches the signature of a SAS in a URL or message.
var sasSig = regexp.MustCompile(`(?i)(sig=)[^&\s"']+`)

// redact removes secrets from s: the client's key and SAS token, and any
// SAS signature.
func (c *Client) redact(s string) string {
	for _, secret := range c.secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "REDACTED")
		}
	}
	return sasSig.ReplaceAllString(s, "${1}REDACTED")
}

// endpointForMessage returns an endpoint as an error may show it, quoted:
// without user info (user:password@), query or fragment, which may hold
// secrets, whether or not the value parses as a URL. Everything up to the
// last "@" is user info, since a password may hold "/", "?" or "#"
// unescaped. What was left out is marked with "...". A value that does not
// start with a scheme ("https://") is not shown at all: it may be a key
// pasted in the wrong place.
func endpointForMessage(s string) string {
	i := strings.Index(s, "://")
	if i <= 0 || strings.IndexFunc(s[:i], func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '+' || r == '-' || r == '.')
	}) >= 0 {
		return "(not shown: it does not start with http:// or https://)"
	}
	var userInfo, query string
	scheme, rest := s[:i+3], s[i+3:]
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		userInfo, rest = "...@", rest[i+1:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		query, rest = rest[i:i+1]+"...", rest[:i]
	}
	return strconv.Quote(scheme + userInfo + rest + query)
}

// sdkError rewords an error of the SDK: an answer of the service becomes
// "<code> (HTTP <status>): <message>" with a hint where there is an obvious
// fix (instead of the SDK's multi-line dump); other errors keep their text.
// Either way secrets are removed. Context errors are returned as they are.
func (c *Client) sdkError(err error) error {
	if err == nil || err == context.Canceled || err == context.DeadlineExceeded {
		return err
	}
	if se := (*sdkError)(nil); errors.As(err, &se) {
		// Reworded already, deeper in the chain: keep the added context.
		return &sdkError{msg: c.redact(err.Error()), err: err}
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return &sdkError{msg: c.redact(err.Error()), err: err}
	}
	code := re.ErrorCode
	if code == "" {
		code = http.StatusText(re.StatusCode)
	}
	msg := fmt.Sprintf("%s (HTTP %d)", code, re.StatusCode)
	if m := serviceMessage(re); m != "" {
		msg += ": " + m
	}
	switch {
	case code == string(bloberror.ContainerNotFound):
		msg += fmt.Sprintf("; create container %q first (az storage container create --name %s), or fix the container name", c.container, c.container)
	case code == string(bloberror.AuthenticationFailed) || code == string(bloberror.InvalidAuthenticationInfo) ||
		strings.Contains(strings.ToLower(msg), "failed to authenticate"):
		switch {
		case strings.HasPrefix(c.auth, "shared key"):
			msg += fmt.Sprintf("; check the account name %q and the account key (%s)", c.account, c.auth)
		case c.auth == "SAS token":
			msg += "; check that the sas-token is complete, made for this account and container, and not expired"
		default:
			msg += "; check the Microsoft Entra ID identity (az account show) and its tenant"
		}
	case re.StatusCode == http.StatusForbidden:
		msg += "; the credentials lack a permission: a SAS needs read, add, create, write, delete and list on the container; an Entra ID identity needs the Storage Blob Data Contributor role"
	}
	return &sdkError{msg: c.redact(msg), err: err}
}

// serviceMessage returns the first line of the <Message> of an Azure
// Storage error answer, if any.
func serviceMessage(re *azcore.ResponseError) string {
	if re.RawResponse == nil {
		return ""
	}
	body, err := azruntime.Payload(re.RawResponse)
	if err != nil || len(body) == 0 {
		return ""
	}
	var e struct {
		Message string `xml:"Message"`
	}
	if xml.Unmarshal(body, &e) != nil {
		return ""
	}
	m, _, _ := strings.Cut(strings.TrimSpace(e.Message), "\n")
	return strings.TrimSuffix(strings.TrimSpace(m), ".")
}
