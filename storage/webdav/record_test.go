package webdav_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xwebdav "golang.org/x/net/webdav"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/filerecord/filerecordtest"
	"github.com/walship/walship/storage/webdav"
)

// TestRecords runs storage/filerecord's suite on rclone serve webdav,
// placing its files through the server (X-OC-Mtime dates them).
func TestRecords(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	filerecordtest.Run(t, func(t *testing.T) filerecordtest.Dir {
		p := srv.NewPath(t)
		dir := filepath.Join(srv.Dir, filepath.FromSlash(p))
		put := func(name string, data []byte, mtime time.Time) {
			if _, err := os.Stat(dir); err != nil {
				mkcolRaw(t, srv, p)
			}
			putRawAt(t, srv, p+"/"+name, data, mtime)
		}
		return filerecordtest.Dir{Path: dir, Open: func() storage.Records { return open(t, srv, p, nil) }, Put: put}
	})
}

// TestRecordsXNetWebDAV runs the suite on golang.org/x/net/webdav, the
// server rclone's is built on, with no rclone in between.
func TestRecordsXNetWebDAV(t *testing.T) {
	root := t.TempDir()
	ts := httptest.NewServer(&xwebdav.Handler{FileSystem: xwebdav.Dir(root), LockSystem: xwebdav.NewMemLS()})
	defer ts.Close()
	filerecordtest.Run(t, func(t *testing.T) filerecordtest.Dir {
		name := strings.ReplaceAll(t.Name(), "/", "-")
		u, _ := url.Parse(strings.Replace(ts.URL, "http://", "webdav://", 1) + "/" + name)
		openClient := func() storage.Records {
			c, err := webdav.Open(context.Background(), storage.Spec{URL: u})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		return filerecordtest.Dir{Path: filepath.Join(root, name), Open: openClient}
	})
}

// TestRecordRetries writes a chain of records through a proxy that fails a
// share of requests, some after the server acted on them: every write
// succeeds once, and the record ends at the last one.
func TestRecordRetries(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	proxy := testserver.NewFaultProxy(t, srv.HTTPURL, 0.2)
	p := srv.NewPath(t)
	c := openURL(t, strings.Replace(proxy.URL, "http://", "webdav://", 1)+p,
		map[string]string{"user": srv.User, "password": srv.Password})
	ctx := context.Background()
	version := ""
	for i := range 20 {
		v, err := c.WriteRecord(ctx, "r", fmt.Appendf(nil, "%d", i), version)
		if err != nil {
			t.Fatalf("write %d through the fault proxy (%s): %v", i, proxy.Summary(), err)
		}
		version = v
	}
	t.Logf("fault proxy: %s", proxy.Summary())
	direct := open(t, srv, p, nil)
	if data, v, err := direct.ReadRecord(ctx, "r"); err != nil || string(data) != "19" || v != version {
		t.Fatalf("read %q version %q (%v); want 19 at %q", data, v, err, version)
	}
}
