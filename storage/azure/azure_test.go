package azure

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/storagetest"
)

// clearEnv unsets the environment variables Open reads, for the test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{EnvAccount, EnvAccountKey, EnvLitestreamAccountKey, EnvLitestreamSASToken} {
		t.Setenv(k, "") // restored when the test ends
		os.Unsetenv(k)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// testKey is a valid base64 account key that is not Azurite's.
const testKey = "c2VjcmV0LWtleS1vZi10aGUtdGVzdC1uZXZlci10by1iZS1zaG93bi0xMjM0NTY3ODkwYWJjZGVm"

func TestParse(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		name  string
		url   string
		keys  map[string]string
		env   map[string]string
		check func(t *testing.T, c *Client)
	}{
		{
			name: "Litestream form",
			url:  "abs://myaccount@mycontainer/path/to/db",
			keys: map[string]string{"account-key": testKey},
			check: func(t *testing.T, c *Client) {
				want(t, "account", c.account, "myaccount")
				want(t, "container", c.container, "mycontainer")
				want(t, "path", c.prefix, "path/to/db")
				want(t, "endpoint", c.endpoint, "https://myaccount.blob.core.windows.net")
				want(t, "String", c.String(), "abs://myaccount@mycontainer/path/to/db")
				want(t, "blob", c.BlobName(0, 1, 2), "path/to/db/ltx/0/0000000000000001-0000000000000002.ltx")
				want(t, "blob", c.BlobName(9, 1, 0x1f), "path/to/db/ltx/9/0000000000000001-000000000000001f.ltx")
				if c.partSize != DefaultPartSize || c.concurrency != DefaultConcurrency {
					t.Errorf("part size %d, concurrency %d; want the defaults", c.partSize, c.concurrency)
				}
			},
		},
		{
			name: "account from key",
			url:  "abs://mycontainer/db/",
			keys: map[string]string{"account-name": "keyaccount", "account-key": testKey},
			check: func(t *testing.T, c *Client) {
				want(t, "account", c.account, "keyaccount")
				want(t, "path", c.prefix, "db")
				want(t, "String", c.String(), "abs://keyaccount@mycontainer/db")
			},
		},
		{
			name: "account from environment",
			url:  "abs://mycontainer",
			keys: map[string]string{"account-key": testKey},
			env:  map[string]string{EnvAccount: "envaccount"},
			check: func(t *testing.T, c *Client) {
				want(t, "account", c.account, "envaccount")
				want(t, "path", c.prefix, "")
				want(t, "String", c.String(), "abs://envaccount@mycontainer")
				want(t, "blob", c.BlobName(1, 3, 4), "ltx/1/0000000000000003-0000000000000004.ltx")
			},
		},
		{
			name: "bucket and path keys override the URL",
			url:  "abs://acct@urlcontainer/urlpath",
			keys: map[string]string{"bucket": "keycontainer", "path": "/key/path/", "account-key": testKey},
			check: func(t *testing.T, c *Client) {
				want(t, "String", c.String(), "abs://acct@keycontainer/key/path")
			},
		},
		{
			name: "keys",
			url:  "abs://acct@c01/db",
			keys: map[string]string{"account-key": testKey, "endpoint": "http://127.0.0.1:10000/devstoreaccount1/", "part-size": "8MiB", "concurrency": "2", "skip-verify": "true"},
			check: func(t *testing.T, c *Client) {
				want(t, "endpoint", c.endpoint, "http://127.0.0.1:10000/devstoreaccount1")
				if c.partSize != 8<<20 || c.concurrency != 2 {
					t.Errorf("part size %d, concurrency %d; want 8 MiB and 2", c.partSize, c.concurrency)
				}
			},
		},
		{
			name: "query parameters, overridden by keys",
			url:  "abs://acct@c01/db?partSize=2MiB&concurrency=3",
			keys: map[string]string{"account-key": testKey, "concurrency": "5"},
			check: func(t *testing.T, c *Client) {
				if c.partSize != 2<<20 || c.concurrency != 5 {
					t.Errorf("part size %d, concurrency %d; want 2 MiB and 5", c.partSize, c.concurrency)
				}
			},
		},
		{
			name: "custom endpoint without account",
			url:  "abs://mycontainer/db",
			keys: map[string]string{"endpoint": "https://blob.example.com/acct", "sas-token": "?sv=2024-01-01&sig=abc"},
			check: func(t *testing.T, c *Client) {
				want(t, "String", c.String(), "abs://mycontainer/db")
				want(t, "auth", c.auth, "SAS token")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := Open(context.Background(), storage.Spec{URL: mustURL(t, tt.url), Keys: tt.keys, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func want(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s is %q; want %q", what, got, want)
	}
}

func TestParseErrors(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		name string
		url  string
		keys map[string]string
		want []string // in the error text
	}{
		{"no container", "abs:///db", nil, []string{"no container", "bucket"}},
		{"bad container", "abs://acct@My_Container/db", map[string]string{"account-key": testKey}, []string{`container name "My_Container" is not valid`, "lower-case"}},
		{"short container", "abs://acct@ab/db", map[string]string{"account-key": testKey}, []string{"not valid"}},
		{"double dash", "abs://acct@a--b/db", map[string]string{"account-key": testKey}, []string{"not valid"}},
		{"no account", "abs://mycontainer/db", map[string]string{"account-key": testKey}, []string{"no storage account", "abs://ACCOUNT@mycontainer/PATH", "account-name", EnvAccount}},
		{"bad account", "abs://My.Account@mycontainer/db", map[string]string{"account-key": testKey}, []string{`storage account name "My.Account" is not valid`}},
		{"account mismatch", "abs://one@mycontainer/db", map[string]string{"account-name": "two", "account-key": testKey}, []string{`account "one"`, `account-name is "two"`}},
		{"key without account", "abs://mycontainer/db", map[string]string{"endpoint": "http://127.0.0.1:1/x", "account-key": testKey}, []string{"needs the storage account name"}},
		{"bad endpoint", "abs://acct@mycontainer/db", map[string]string{"endpoint": "ftp://x", "account-key": testKey}, []string{`endpoint "ftp://x" is not a URL`}},
		{"endpoint with query", "abs://acct@mycontainer/db", map[string]string{"endpoint": "https://x/?sig=topsecret", "account-key": testKey}, []string{`endpoint "https://x/?..." is not a URL`, "sas-token"}},
		{"endpoint with password", "abs://acct@mycontainer/db", map[string]string{"endpoint": "https://user:topsecret@acct.blob.core.windows.net/", "account-key": testKey}, []string{`endpoint "https://...@acct.blob.core.windows.net" is not a URL`, "no user, password or query", "account-key"}},
		{"endpoint with user", "abs://acct@mycontainer/db", map[string]string{"endpoint": "http://topsecret@127.0.0.1:10000/devstoreaccount1", "account-key": testKey}, []string{`endpoint "http://...@127.0.0.1:10000/devstoreaccount1" is not a URL`}},
		{"endpoint with password and query", "abs://acct@mycontainer/db", map[string]string{"endpoint": "https://u:top/se?cr#et@host/p?sv=1&sig=topsecret", "account-key": testKey}, []string{`endpoint "https://...@host/p?..." is not a URL`}},
		{"endpoint with bad escape", "abs://acct@mycontainer/db", map[string]string{"endpoint": "https://u:topsecret%zz@host/", "account-key": testKey}, []string{`endpoint "https://...@host" is not a URL`}},
		{"endpoint with fragment", "abs://acct@mycontainer/db", map[string]string{"endpoint": "https://host/p#topsecret", "account-key": testKey}, []string{`endpoint "https://host/p#..." is not a URL`}},
		{"endpoint without scheme", "abs://acct@mycontainer/db", map[string]string{"endpoint": "topsecret", "account-key": testKey}, []string{"endpoint (not shown: it does not start with http:// or https://) is not a URL"}},
		{"endpoint with password before scheme", "abs://acct@mycontainer/db", map[string]string{"endpoint": "u:topsecret@host://x", "account-key": testKey}, []string{"endpoint (not shown"}},
		{"bad part size", "abs://acct@mycontainer/db", map[string]string{"part-size": "lots", "account-key": testKey}, []string{"part-size", `"lots" is not a size`}},
		{"small part size", "abs://acct@mycontainer/db", map[string]string{"part-size": "512KiB", "account-key": testKey}, []string{"part-size 524288 is out of range", "1MiB to 4000MiB"}},
		{"bad concurrency", "abs://acct@mycontainer/db", map[string]string{"concurrency": "0", "account-key": testKey}, []string{"concurrency", "positive whole number"}},
		{"bad skip-verify", "abs://acct@mycontainer/db", map[string]string{"skip-verify": "maybe", "account-key": testKey}, []string{"skip-verify", "true or false"}},
		{"bad key", "abs://acct@mycontainer/db", map[string]string{"account-key": "not*base64*topsecret"}, []string{"account key from account-key is not valid base64"}},
		{"Entra ID over http", "abs://acct@mycontainer/db", map[string]string{"endpoint": "http://127.0.0.1:10000/acct"}, []string{"only sent over https", "account-key", "sas-token"}},
		{"wrong scheme", "s3://acct@mycontainer/db", nil, []string{"not abs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(context.Background(), storage.Spec{URL: mustURL(t, tt.url), Keys: tt.keys})
			if err == nil {
				t.Fatal("Open succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}

	t.Run("password in URL", func(t *testing.T) {
		_, err := Open(context.Background(), storage.Spec{URL: mustURL(t, "abs://acct:topsecret@mycontainer/db")})
		if err == nil || !strings.Contains(err.Error(), "account-key") || strings.Contains(err.Error(), "topsecret") {
			t.Fatalf("error %v; want one that points to account-key and does not show the password", err)
		}
	})
}

// TestBlockID checks that block IDs have the layout of the SDK's
// UploadStream: 64 bytes, the upload's 16-byte prefix, the block number
// big-endian, then zeros.
func TestBlockID(t *testing.T) {
	p1, p2 := newBlockIDPrefix(), newBlockIDPrefix()
	if p1 == p2 {
		t.Fatal("two uploads got the same block ID prefix")
	}
	for _, n := range []uint32{0, 1, 49_999} {
		id := blockID(p1, n)
		if len(id) != 88 {
			t.Errorf("block %d: ID %q has %d characters; want 88, as the SDK's", n, id, len(id))
		}
		raw, err := base64.StdEncoding.DecodeString(id)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, 64)
		copy(want, p1[:])
		binary.BigEndian.PutUint32(want[16:], n)
		if !bytes.Equal(raw, want) {
			t.Errorf("block %d: ID %x; want %x", n, raw, want)
		}
	}
	if blockID(p1, 1) == blockID(p2, 1) || blockID(p1, 1) == blockID(p1, 2) {
		t.Error("block IDs are not unique")
	}
}

func TestCredentialOrder(t *testing.T) {
	const sasKey = "sv=2024-01-01&sp=racwdl&sig=keysig"
	tests := []struct {
		name string
		url  string
		keys map[string]string
		env  map[string]string
		want string
	}{
		{"account-key first", "abs://acct@c01/db?sasToken=sv%3D1%26sig%3Dq", map[string]string{"account-key": testKey, "sas-token": sasKey}, map[string]string{EnvAccountKey: testKey}, "shared key from account-key"},
		{"account-key in query", "abs://acct@c01/db?accountKey=" + url.QueryEscape(testKey), nil, nil, "shared key from account-key"},
		{"sas-token before environment", "abs://acct@c01/db", map[string]string{"sas-token": sasKey}, map[string]string{EnvAccountKey: testKey}, "SAS token"},
		{"SAS pasted in the URL", "abs://acct@c01/db?sv=2024-01-01&sp=racwdl&sig=urlsig&concurrency=2", nil, map[string]string{EnvAccountKey: testKey}, "SAS token"},
		{"AZURE_STORAGE_ACCOUNT_KEY", "abs://acct@c01/db", nil, map[string]string{EnvAccountKey: testKey, EnvLitestreamAccountKey: "bm90LXVzZWQ="}, "shared key from " + EnvAccountKey},
		{"LITESTREAM_AZURE_ACCOUNT_KEY", "abs://acct@c01/db", nil, map[string]string{EnvLitestreamAccountKey: testKey, EnvLitestreamSASToken: sasKey}, "shared key from " + EnvLitestreamAccountKey},
		{"LITESTREAM_AZURE_SAS_TOKEN", "abs://acct@c01/db", nil, map[string]string{EnvLitestreamSASToken: "?" + sasKey}, "SAS token"},
		{"Entra ID last", "abs://acct@c01/db", nil, nil, "Microsoft Entra ID (DefaultAzureCredential)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := Open(context.Background(), storage.Spec{URL: mustURL(t, tt.url), Keys: tt.keys})
			if err != nil {
				t.Fatal(err)
			}
			want(t, "credentials", c.auth, tt.want)
			if strings.Contains(c.String(), "sig") || strings.Contains(c.String(), testKey) {
				t.Errorf("String %q shows a credential", c)
			}
		})
	}

	t.Run("SAS pasted in the URL keeps only SAS parameters", func(t *testing.T) {
		clearEnv(t)
		spec := storage.Spec{URL: mustURL(t, "abs://acct@c01/db?sv=2024-01-01&sig=urlsig&concurrency=2&part-size=2MiB")}
		want(t, "SAS", sasToken(spec), "sig=urlsig&sv=2024-01-01")
	})
}

// azurite returns a client of a new container of srv, and the container.
func azurite(t *testing.T, srv *testserver.AzureServer, path string, keys map[string]string) (*Client, string) {
	t.Helper()
	name := srv.NewContainer(t)
	k := map[string]string{"endpoint": srv.Endpoint, "account-key": srv.Key}
	for n, v := range keys {
		if v == "" {
			delete(k, n)
		} else {
			k[n] = v
		}
	}
	u := &url.URL{Scheme: "abs", User: url.User(srv.Account), Host: name, Path: "/" + path}
	c, err := Open(context.Background(), storage.Spec{URL: u, Keys: k})
	if err != nil {
		t.Fatal(err)
	}
	return c, name
}

// containerSAS returns a SAS token of a container with the given
// permissions.
func containerSAS(t *testing.T, srv *testserver.AzureServer, name string, perms sas.ContainerPermissions) string {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(srv.Account, srv.Key)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    time.Now().Add(time.Hour).UTC(),
		Permissions:   perms.String(),
		ContainerName: name,
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode()
}

var allPerms = sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, Delete: true, List: true}

func TestAzurite(t *testing.T) {
	srv := testserver.Azurite(t)
	raw := srv.Client(t)
	ctx := context.Background()

	t.Run("ConformanceSAS", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Client {
			name := srv.NewContainer(t)
			c, _ := azurite(t, srv, "", map[string]string{"bucket": name, "account-key": "", "sas-token": containerSAS(t, srv, name, allPerms)})
			want(t, "credentials", c.auth, "SAS token")
			return c
		})
	})

	t.Run("ConformanceStreamed", func(t *testing.T) {
		// Sources that cannot seek take the streamed path, in 1 MiB
		// blocks: the suite's 12 MB file is 12 blocks.
		storagetest.Run(t, func(t *testing.T) storage.Client {
			c, _ := azurite(t, srv, "stream", map[string]string{"part-size": "1MiB", "concurrency": "3"})
			return unseekable{c}
		})
	})

	t.Run("Layout", func(t *testing.T) {
		c, name := azurite(t, srv, "a/b", nil)
		at := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
		b0 := storagetest.File(t, 1, 2, 1, 1)
		b9 := storagetest.File(t, 1, 0x2a, 2, 2)
		for _, w := range []struct {
			level    int
			min, max ltx.TXID
			b        []byte
		}{{0, 1, 2, b0}, {9, 1, 0x2a, b9}} {
			if _, err := c.WriteLTXFile(ctx, w.level, w.min, w.max, bytes.NewReader(w.b), at); err != nil {
				t.Fatal(err)
			}
		}
		pager := raw.NewListBlobsFlatPager(name, &azblob.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Metadata: true}})
		got := map[string]string{}
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, item := range page.Segment.BlobItems {
				ts := ""
				if v := item.Metadata[storage.TimestampMetadataAzure]; v != nil {
					ts = *v
				}
				got[*item.Name] = ts
				if ct := item.Properties.ContentType; ct == nil || *ct != "application/octet-stream" {
					t.Errorf("blob %s has content type %v", *item.Name, ct)
				}
			}
		}
		wantBlobs := map[string]string{
			"a/b/ltx/0/0000000000000001-0000000000000002.ltx": "2026-01-02T03:04:05.678Z",
			"a/b/ltx/9/0000000000000001-000000000000002a.ltx": "2026-01-02T03:04:05.678Z",
		}
		if len(got) != len(wantBlobs) {
			t.Fatalf("blobs %v; want %v", got, wantBlobs)
		}
		for n, ts := range wantBlobs {
			if got[n] != ts {
				t.Errorf("blob %s has %s %q; want %q (blobs: %v)", n, storage.TimestampMetadataAzure, got[n], ts, got)
			}
		}
		// The bytes are the file's.
		resp, err := raw.DownloadStream(ctx, name, "a/b/ltx/9/0000000000000001-000000000000002a.ltx", nil)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(rb, b9) {
			t.Fatalf("the raw blob differs from the file written (%v)", err)
		}
	})

	t.Run("ReadsLitestreamBlobs", func(t *testing.T) {
		// Blobs written by another tool: one with the timestamp metadata
		// (in another case), one without it, and names to ignore.
		c, name := azurite(t, srv, "db", nil)
		ts := "2025-06-07T08:09:10.123Z"
		upload := func(blobName string, meta map[string]*string) {
			t.Helper()
			if _, err := raw.UploadBuffer(ctx, name, blobName, storagetest.File(t, 1, 1, 1, 3), &azblob.UploadBufferOptions{Metadata: meta}); err != nil {
				t.Fatal(err)
			}
		}
		before := time.Now().Add(-2 * time.Second)
		upload("db/ltx/0/0000000000000001-0000000000000001.ltx", map[string]*string{"LitestreamTimestamp": &ts})
		upload("db/ltx/0/0000000000000002-0000000000000003.ltx", nil)
		upload("db/ltx/0/notes.txt", nil)
		upload("db/ltx/0/sub/0000000000000004-0000000000000004.ltx", nil)
		upload("db/ltx/00/0000000000000005-0000000000000005.ltx", nil)
		after := time.Now().Add(2 * time.Second)

		files, err := c.LTXFiles(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 2 || files[0].MaxTXID != 1 || files[1].MaxTXID != 3 {
			t.Fatalf("listed %+v; want 1-1 and 2-3", files)
		}
		if wantTS, _ := storage.ParseTimestamp(ts); !files[0].CreatedAt.Equal(wantTS) {
			t.Errorf("created-at %s; want the metadata's %s", files[0].CreatedAt, wantTS)
		}
		got := files[1].CreatedAt
		if got.Location() != time.UTC || got.Nanosecond() != 0 || got.Before(before.Truncate(time.Second)) || got.After(after) {
			t.Errorf("created-at without metadata is %s; want the creation time, in UTC, to the second", got)
		}
	})

	t.Run("StagedBlocks", func(t *testing.T) {
		// A seekable source above 32 MiB is staged in part-size blocks,
		// from where the reader stands.
		c, name := azurite(t, srv, "db", nil)
		b := make([]byte, 40<<20+123)
		_, _ = rand.Read(b)
		r := bytes.NewReader(b)
		if _, err := r.Seek(100, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		info, err := c.WriteLTXFile(ctx, 9, 1, 5, r, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != int64(len(b)-100) {
			t.Fatalf("wrote %d bytes; want %d", info.Size, len(b)-100)
		}
		if n := committedBlocks(t, raw, name, c.BlobName(9, 1, 5)); n != 11 {
			t.Errorf("%d committed blocks; want 11 of 4 MiB", n)
		}
		if got := readAll(t, c, 9, 1, 5); !bytes.Equal(got, b[100:]) {
			t.Fatal("the staged file reads back different")
		}
	})

	t.Run("AfterCrashedSDKUpload", func(t *testing.T) {
		// An upload by the SDK's UploadStream (Litestream's, or walship's
		// own streamed path) that dies midway leaves uncommitted blocks,
		// and Azure then refuses blocks whose IDs have another length
		// (400 InvalidBlobOrBlock) until they expire, up to 7 days later.
		// Staged uploads of the same blob must still work.
		c, name := azurite(t, srv, "db", nil)
		blobName := c.BlobName(0, 1, 1)
		bb := raw.ServiceClient().NewContainerClient(name).NewBlockBlobClient(blobName)
		// One buffer (concurrency 1): the SDK reads on only once the first
		// block is staged, and the source fails then.
		crash := io.MultiReader(bytes.NewReader(make([]byte, 1<<20)), failingReader{})
		_, err := bb.UploadStream(ctx, crash, &blockblob.UploadStreamOptions{BlockSize: 1 << 20, Concurrency: 1})
		if err == nil || !strings.Contains(err.Error(), "crashed") {
			t.Fatalf("the crashing upload returned %v", err)
		}
		// The SDK's block is there: a block ID of another length is refused.
		_, err = bb.StageBlock(ctx, base64.StdEncoding.EncodeToString([]byte("sixteen-byte-id!")), streaming.NopCloser(bytes.NewReader([]byte("x"))), nil)
		if !bloberror.HasCode(err, bloberror.InvalidBlobOrBlock) {
			t.Fatalf("staging a block with a 16-byte ID after the crash: %v; want InvalidBlobOrBlock", err)
		}

		// Larger than the single-request limit: staged in blocks.
		b := make([]byte, singleUploadSize+1)
		_, _ = rand.Read(b)
		if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(b), time.Now()); err != nil {
			t.Fatalf("a staged upload after a crashed SDK upload: %v", err)
		}
		if n := committedBlocks(t, raw, name, blobName); n != 9 {
			t.Errorf("%d committed blocks; want 9 of 4 MiB", n)
		}
		if got := readAll(t, c, 0, 1, 1); !bytes.Equal(got, b) {
			t.Fatal("the staged file reads back different")
		}
	})

	t.Run("StreamedBlocks", func(t *testing.T) {
		c, name := azurite(t, srv, "db", map[string]string{"part-size": "1MiB"})
		b := make([]byte, 3<<20+5)
		_, _ = rand.Read(b)
		info, err := c.WriteLTXFile(ctx, 0, 1, 1, io.MultiReader(bytes.NewReader(b)), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != int64(len(b)) {
			t.Fatalf("wrote %d bytes; want %d", info.Size, len(b))
		}
		if n := committedBlocks(t, raw, name, c.BlobName(0, 1, 1)); n != 4 {
			t.Errorf("%d committed blocks; want 4 of 1 MiB", n)
		}
		if got := readAll(t, c, 0, 1, 1); !bytes.Equal(got, b) {
			t.Fatal("the streamed file reads back different")
		}
	})

	t.Run("OSFile", func(t *testing.T) {
		c, _ := azurite(t, srv, "db", nil)
		b := storagetest.File(t, 1, 7, 20, 4)
		p := filepath.Join(t.TempDir(), "f.ltx")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := c.WriteLTXFile(ctx, 9, 1, 7, f, time.Now()); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, c, 9, 1, 7); !bytes.Equal(got, b) {
			t.Fatal("the file reads back different")
		}
	})

	t.Run("ReadAtEnd", func(t *testing.T) {
		c, _ := azurite(t, srv, "db", nil)
		b := storagetest.File(t, 1, 1, 1, 5)
		if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(b), time.Now()); err != nil {
			t.Fatal(err)
		}
		rc, err := c.OpenLTXFile(ctx, 0, 1, 1, int64(len(b)), 0)
		if err != nil {
			t.Fatalf("reading from the end: %v", err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || len(got) != 0 {
			t.Fatalf("reading from the end gave %d bytes, %v; want none", len(got), err)
		}
	})

	t.Run("DownloadHoldsTransferUntilClose", func(t *testing.T) {
		c, _ := azurite(t, srv, "db", nil)
		c.transfers = storage.NewTransfers(1, 0)
		if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(storagetest.File(t, 1, 1, 1, 6)), time.Now()); err != nil {
			t.Fatal(err)
		}
		rc, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		// The only transfer slot is held by the open download.
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if _, err := c.WriteLTXFile(short, 0, 2, 2, bytes.NewReader(storagetest.File(t, 2, 2, 1, 7)), time.Now()); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a write while a download is open: %v; want it to wait for the slot", err)
		}
		rc.Close()
		if _, err := c.WriteLTXFile(ctx, 0, 2, 2, bytes.NewReader(storagetest.File(t, 2, 2, 1, 7)), time.Now()); err != nil {
			t.Fatalf("a write after the download closed: %v", err)
		}
	})

	t.Run("WrongKey", func(t *testing.T) {
		c, _ := azurite(t, srv, "db", map[string]string{"account-key": testKey})
		_, err := c.LTXFiles(ctx, 0)
		checkErr(t, err, []string{"replica abs://devstoreaccount1@", "list level 0", "HTTP 403", "check the account name", "account key (shared key from account-key)"}, testKey)
		_, err = c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(storagetest.File(t, 1, 1, 1, 1)), time.Now())
		checkErr(t, err, []string{"write level 0 file 0000000000000001-0000000000000001.ltx", "HTTP 403"}, testKey)
		_, err = c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
		checkErr(t, err, []string{"open level 0 file 0000000000000001-0000000000000001.ltx", "HTTP 403"}, testKey)
		if errors.Is(err, storage.ErrNotFound) {
			t.Error("a refused read is reported as not found")
		}
		err = c.DeleteLTXFiles(ctx, []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}})
		checkErr(t, err, []string{"delete level 0 file 0000000000000001-0000000000000001.ltx", "HTTP 403"}, testKey)
	})

	t.Run("ReadOnlySAS", func(t *testing.T) {
		name := srv.NewContainer(t)
		token := containerSAS(t, srv, name, sas.ContainerPermissions{Read: true, List: true})
		c, _ := azurite(t, srv, "db", map[string]string{"bucket": name, "account-key": "", "sas-token": token})
		if files, err := c.LTXFiles(ctx, 0); err != nil || len(files) != 0 {
			t.Fatalf("listing with a read-only SAS: %v, %v", files, err)
		}
		_, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(storagetest.File(t, 1, 1, 1, 1)), time.Now())
		q, _ := url.ParseQuery(token)
		checkErr(t, err, []string{"write level 0 file", "HTTP 403"}, q.Get("sig"))
	})

	t.Run("SASNotInTransportErrors", func(t *testing.T) {
		// A server that is not there: the SDK's error quotes the URL,
		// query included.
		clearEnv(t)
		port := testserver.FreePort(t)
		token := "sv=2024-01-01&sp=racwdl&sig=c2VjcmV0c2ln%2Bsecret"
		c, err := Open(ctx, storage.Spec{URL: mustURL(t, "abs://devstoreaccount1@c01/db"), Keys: map[string]string{
			"endpoint": "http://" + testserver.Addr(port) + "/devstoreaccount1", "sas-token": token,
		}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.LTXFiles(ctx, 0)
		checkErr(t, err, []string{"replica abs://devstoreaccount1@c01/db", "list level 0", "connection refused"}, "c2VjcmV0c2ln")
	})

	t.Run("MissingContainer", func(t *testing.T) {
		c, _ := azurite(t, srv, "db", map[string]string{"bucket": "no-such-container"})
		_, err := c.LTXFiles(ctx, 0)
		checkErr(t, err, []string{"ContainerNotFound", `create container "no-such-container"`}, srv.Key)
		if _, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("opening a file of a missing container: %v; want ErrNotFound", err)
		}
		if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}}); err != nil {
			t.Errorf("deleting from a missing container: %v", err)
		}
	})
}

// failingReader is a source whose process dies.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("the uploading process crashed") }

// unseekable hides that the sources of writes can seek.
type unseekable struct{ *Client }

func (u unseekable) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	return u.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, struct{ io.Reader }{r}, createdAt)
}

func checkErr(t *testing.T, err error, wants []string, secret string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q shows the secret %q", err, secret)
	}
}

func committedBlocks(t *testing.T, raw *azblob.Client, containerName, blobName string) int {
	t.Helper()
	bb := raw.ServiceClient().NewContainerClient(containerName).NewBlockBlobClient(blobName)
	resp, err := bb.GetBlockList(context.Background(), blockblob.BlockListTypeAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.UncommittedBlocks) != 0 {
		t.Errorf("%d uncommitted blocks left", len(resp.UncommittedBlocks))
	}
	return len(resp.CommittedBlocks)
}

func readAll(t *testing.T, c *Client, level int, minTXID, maxTXID ltx.TXID) []byte {
	t.Helper()
	rc, err := c.OpenLTXFile(context.Background(), level, minTXID, maxTXID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
