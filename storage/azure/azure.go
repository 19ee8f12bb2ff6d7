// Package azure implements a replica in Azure Blob Storage (URL scheme abs),
// in the layout of Litestream 0.5, so each tool reads the other's
// replicas:
//
//	<path>/ltx/<level>/<minTXID>-<maxTXID>.ltx
//
// Each blob carries its LTX header timestamp as the metadata
// "litestreamtimestamp" (Azure forbids dashes in metadata names), which
// listings read without an extra request per blob. Records
// (storage.Records) are blobs beside ltx/, <path>/<name>, written with
// conditional requests on their ETag.
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
//     LITESTREAM_AZURE_ACCOUNT_KEY and LITESTREAM_AZURE_SAS_TOKEN
//     (Litestream's names);
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
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
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
	// EnvLitestreamSASToken is Litestream's variable for a SAS token.
	EnvLitestreamSASToken = "LITESTREAM_AZURE_SAS_TOKEN"
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
		c.log.Warn("TLS certificate verification is off (skip-verify)", "destination", c.String())
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
	c.log.Debug("opened Azure Blob Storage replica", "destination", c.String(), "endpoint", c.endpoint, "credentials", c.auth)
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
