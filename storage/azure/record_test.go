package azure

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
)

// TestRecordBlob checks that a record is the blob <path>/<name>, versioned
// by its ETag, and that a missing container is not taken for a conflict.
func TestRecordBlob(t *testing.T) {
	srv := testserver.Azurite(t)
	raw := srv.Client(t)
	ctx := context.Background()

	c, name := azurite(t, srv, "dbs/db", nil)
	v, err := c.WriteRecord(ctx, "owner.json", []byte(`{"owner":"a"}`), "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := raw.DownloadStream(ctx, name, "dbs/db/owner.json", nil)
	if err != nil {
		t.Fatalf("the record is not the blob dbs/db/owner.json: %v", err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(data) != `{"owner":"a"}` || resp.ETag == nil || string(*resp.ETag) != v {
		t.Fatalf("the blob holds %q (%v) with ETag %v; want the record, version %s", data, err, resp.ETag, v)
	}

	gone, _ := azurite(t, srv, "db", map[string]string{"bucket": "no-such-container"})
	if _, _, err := gone.ReadRecord(ctx, "owner.json"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("reading a record of a missing container: %v; want storage.ErrNotFound", err)
	}
	_, err = gone.WriteRecord(ctx, "owner.json", []byte(`{}`), "")
	if err == nil || errors.Is(err, storage.ErrConflict) {
		t.Fatalf("creating a record in a missing container: %v; want an error that is not a conflict", err)
	}
}
