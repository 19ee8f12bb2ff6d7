package azure_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/azure"
	"github.com/walship/walship/storage/storagetest"
)

func TestConformance(t *testing.T) {
	srv := testserver.Azurite(t)
	storagetest.Run(t, func(t *testing.T) storage.Client {
		return open(t, srv, srv.NewContainer(t), "db", nil)
	})
}

// TestConformanceNoPath runs the suite with the replica at the top of the
// container.
func TestConformanceNoPath(t *testing.T) {
	srv := testserver.Azurite(t)
	storagetest.Run(t, func(t *testing.T) storage.Client {
		return open(t, srv, srv.NewContainer(t), "", nil)
	})
}

// open returns a client of a container of srv, with the account key and
// extra keys.
func open(t *testing.T, srv *testserver.AzureServer, container, path string, keys map[string]string) *azure.Client {
	t.Helper()
	u := &url.URL{Scheme: "abs", User: url.User(srv.Account), Host: container, Path: "/" + path}
	k := map[string]string{"endpoint": srv.Endpoint, "account-key": srv.Key}
	for n, v := range keys {
		k[n] = v
	}
	c, err := azure.Open(context.Background(), storage.Spec{URL: u, Keys: k, Transfers: storage.NewTransfers(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConformanceObjects: any blob under the replica's path reads back
// through storage.Objects; blobs are put with the SDK, as another tool
// would.
func TestConformanceObjects(t *testing.T) {
	srv := testserver.Azurite(t)
	api := srv.Client(t)
	storagetest.RunObjects(t, func(t *testing.T) (storage.Client, storagetest.Put) {
		name := srv.NewContainer(t)
		return open(t, srv, name, "db", nil), func(blob string, data []byte) error {
			_, err := api.UploadBuffer(context.Background(), name, "db/"+blob, data, nil)
			return err
		}
	})
}
