package gcs_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/gcs"
	"github.com/walship/walship/storage/storagetest"
)

// open opens a client on srv with the endpoint key, failing the test on error.
func open(t testing.TB, srv *testserver.GCSServer, rawURL string, keys map[string]string) *gcs.Client {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if keys == nil {
		keys = map[string]string{}
	}
	if _, ok := keys["endpoint"]; !ok {
		keys["endpoint"] = srv.Endpoint
	}
	c, err := gcs.Open(context.Background(), storage.Spec{URL: u, Keys: keys, Transfers: storage.NewTransfers(4, 32<<20)})
	if err != nil {
		t.Fatalf("open %s: %v", rawURL, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	srv := testserver.FakeGCS(t)
	storagetest.Run(t, func(t *testing.T) storage.Client {
		return open(t, srv, "gs://"+srv.NewBucket(t)+"/backups/db", nil)
	})
}

// TestConformanceNoPrefix runs the suite on a replica at the top of a bucket,
// with a part size small enough that the large file goes in a resumable
// upload of several chunks.
func TestConformanceNoPrefix(t *testing.T) {
	srv := testserver.FakeGCS(t)
	storagetest.Run(t, func(t *testing.T) storage.Client {
		return open(t, srv, "gs://"+srv.NewBucket(t), map[string]string{"part-size": "1MiB"})
	})
}

// TestConformanceObjects: any object under the replica's path reads back
// through storage.Objects; objects are put with the JSON API's upload, as
// another tool would.
func TestConformanceObjects(t *testing.T) {
	srv := testserver.FakeGCS(t)
	storagetest.RunObjects(t, func(t *testing.T) (storage.Client, storagetest.Put) {
		bucket := srv.NewBucket(t)
		return open(t, srv, "gs://"+bucket+"/backups/db", nil), func(name string, data []byte) error {
			u := srv.Endpoint + "/upload/storage/v1/b/" + bucket + "/o?uploadType=media&name=" + url.QueryEscape("backups/db/"+name)
			resp, err := http.Post(u, "application/octet-stream", bytes.NewReader(data))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(resp.Body)
				return fmt.Errorf("upload %s: %s: %s", name, resp.Status, b)
			}
			return nil
		}
	})
}
