package webdav_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"
	xwebdav "golang.org/x/net/webdav"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/storagetest"
	"github.com/walship/walship/storage/webdav"
)

func write(t *testing.T, c storage.Client, level int, min, max ltx.TXID, r io.Reader, at time.Time) *ltx.FileInfo {
	t.Helper()
	info, err := c.WriteLTXFile(context.Background(), level, min, max, r, at)
	if err != nil {
		t.Fatalf("write %s: %v", storage.Describe(level, min, max), err)
	}
	return info
}

func readAll(t *testing.T, c storage.Client, level int, min, max ltx.TXID, off, n int64) []byte {
	t.Helper()
	rc, err := c.OpenLTXFile(context.Background(), level, min, max, off, n)
	if err != nil {
		t.Fatalf("open %s: %v", storage.Describe(level, min, max), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dirNames lists a directory of the served tree on disk.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// putRaw uploads data to the path p of the server with a plain PUT: files
// placed on its disk directly would stay unseen for minutes behind rclone's
// directory cache.
func putRaw(t *testing.T, srv *testserver.WebDAVServer, p string, data []byte) {
	t.Helper()
	putRawAt(t, srv, p, data, time.Time{})
}

// putRawAt is putRaw, setting the file's modification time to mtime unless
// it is zero.
func putRawAt(t *testing.T, srv *testserver.WebDAVServer, p string, data []byte, mtime time.Time) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, srv.HTTPURL+p, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(srv.User, srv.Password)
	if !mtime.IsZero() {
		req.Header.Set("X-OC-Mtime", strconv.FormatInt(mtime.Unix(), 10))
	}
	res, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", p, err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("PUT %s: %s", p, res.Status)
	}
}

// mkcolRaw creates the collection p on the server.
func mkcolRaw(t *testing.T, srv *testserver.WebDAVServer, p string) {
	t.Helper()
	req, err := http.NewRequest("MKCOL", srv.HTTPURL+p, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(srv.User, srv.Password)
	res, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("MKCOL %s: %v", p, err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("MKCOL %s: %s", p, res.Status)
	}
}

// TestLayout checks what lands on the server's disk: Litestream's layout
// <path>/ltx/<level>/<min>-<max>.ltx, the bytes written, the LTX timestamp
// as the file's modification time to the second, and no temp file left.
func TestLayout(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	p := srv.NewPath(t) + "/nested/app"
	c := open(t, srv, p, nil)

	at0 := time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	at9 := time.Date(2025, 12, 31, 23, 59, 59, 999_000_000, time.UTC)
	b0 := storagetest.File(t, 2, 5, 2, 1)
	b9 := storagetest.File(t, 1, 5, 4, 2)
	info := write(t, c, 0, 2, 5, bytes.NewReader(b0), at0)
	if !info.CreatedAt.Equal(at0.Truncate(time.Second)) || info.Size != int64(len(b0)) {
		t.Fatalf("write returned %+v; want %d bytes created at %s", info, len(b0), at0.Truncate(time.Second))
	}
	write(t, c, 9, 1, 5, bytes.NewReader(b9), at9)

	for _, f := range []struct {
		level int
		name  string
		data  []byte
		at    time.Time
	}{
		{0, "0000000000000002-0000000000000005.ltx", b0, at0},
		{9, "0000000000000001-0000000000000005.ltx", b9, at9},
	} {
		dir := filepath.Join(srv.Dir, filepath.FromSlash(p), "ltx", strconv.Itoa(f.level))
		if names := dirNames(t, dir); len(names) != 1 || names[0] != f.name {
			t.Fatalf("%s holds %v; want only %s", dir, names, f.name)
		}
		onDisk := filepath.Join(dir, f.name)
		got, err := os.ReadFile(onDisk)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.data) {
			t.Fatalf("%s holds %d bytes that differ from the %d written", onDisk, len(got), len(f.data))
		}
		fi, err := os.Stat(onDisk)
		if err != nil {
			t.Fatal(err)
		}
		if want := f.at.Truncate(time.Second); !fi.ModTime().Equal(want) {
			t.Fatalf("%s has mtime %s; want the LTX timestamp %s", onDisk, fi.ModTime().UTC(), want)
		}
	}
	if names := dirNames(t, filepath.Join(srv.Dir, filepath.FromSlash(p), "ltx")); strings.Join(names, ",") != "0,9" {
		t.Fatalf("ltx/ holds %v; want the level directories 0 and 9", names)
	}
}

// TestListingIgnores checks that listings skip temp files of interrupted
// writes, other names, and collections, all placed through the server.
func TestListingIgnores(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	p := srv.NewPath(t)
	c := open(t, srv, p, nil)
	write(t, c, 0, 1, 1, bytes.NewReader(storagetest.File(t, 1, 1, 1, 1)), time.Now())

	dir := p + "/ltx/0/"
	names := []string{
		".0000000000000002-0000000000000002.ltx.tmp-" + strconv.FormatInt(time.Now().Unix(), 10) + "-0123456789abcdef",
		"0000000000000003-0000000000000003.ltx.partial",
		"notes.txt",
		"0000000000000005-0000000000000004.ltx", // max below min
	}
	for _, name := range names {
		putRaw(t, srv, dir+name, []byte("x"))
	}
	mkcolRaw(t, srv, dir+"0000000000000006-0000000000000006.ltx")
	files, err := c.LTXFiles(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].MinTXID != 1 {
		t.Fatalf("listed %+v; want only file 1-1", files)
	}
	if got := dirNames(t, filepath.Join(srv.Dir, filepath.FromSlash(dir))); len(got) != len(names)+2 {
		t.Fatalf("the level holds %v; want the file, the %d names put there and the collection", got, len(names))
	}
}

// TestStaleTempFilesRemoved places temp files of interrupted writes on the
// server: a listing removes those whose name dates them more than a
// day back, and leaves recent ones (a write may be under way) and other
// hidden files alone.
func TestStaleTempFilesRemoved(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	p := srv.NewPath(t)
	c := open(t, srv, p, nil)
	write(t, c, 0, 1, 1, bytes.NewReader(storagetest.File(t, 1, 1, 1, 1)), time.Now())

	dir := filepath.Join(srv.Dir, filepath.FromSlash(p), "ltx", "0")
	old := strconv.FormatInt(time.Now().Add(-25*time.Hour).Unix(), 10)
	recent := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	stale := []string{
		".0000000000000002-0000000000000002.ltx.tmp-" + old + "-0123456789abcdef",
		".0000000000000003-0000000000000004.ltx.tmp-" + old + "-fedcba9876543210",
	}
	kept := []string{
		"0000000000000001-0000000000000001.ltx",
		".0000000000000005-0000000000000005.ltx.tmp-" + recent + "-0123456789abcdef",
		".keep",
	}
	for _, name := range append(stale, kept[1:]...) {
		putRaw(t, srv, p+"/ltx/0/"+name, []byte("x"))
	}
	files, err := c.LTXFiles(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].MinTXID != 1 {
		t.Fatalf("listed %+v; want only file 1-1", files)
	}
	names := dirNames(t, dir)
	slices.Sort(names)
	slices.Sort(kept)
	if !slices.Equal(names, kept) {
		t.Fatalf("after a listing %s holds %v; want %v", dir, names, kept)
	}
}

// TestShortUploadNeverMoved puts a proxy in front of the server that cuts
// the body of every upload in half, as a broken middlebox would: the write
// fails, the short file is never moved onto the final name (no MOVE is
// sent), the file that was there stays as it was, and no temp file stays.
func TestShortUploadNeverMoved(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	target, err := url.Parse(srv.HTTPURL)
	if err != nil {
		t.Fatal(err)
	}
	var truncate atomic.Bool
	var moves, puts atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(target)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !truncate.Load() {
			rp.ServeHTTP(w, r)
			return
		}
		switch r.Method {
		case "MOVE":
			moves.Add(1)
		case http.MethodPut:
			puts.Add(1)
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			b = b[:len(b)/2]
			r.Body = io.NopCloser(bytes.NewReader(b))
			r.ContentLength = int64(len(b))
		}
		rp.ServeHTTP(w, r)
	}))
	defer ts.Close()

	p := srv.NewPath(t)
	c := openURL(t, strings.Replace(ts.URL, "http://", "webdav://", 1)+p,
		map[string]string{"user": srv.User, "password": srv.Password})
	before := storagetest.File(t, 1, 1, 3, 1)
	write(t, c, 0, 1, 1, bytes.NewReader(before), time.Now())

	truncate.Store(true)
	for _, txid := range []ltx.TXID{1, 2} { // over a file, and a new name
		b := storagetest.File(t, txid, txid, 3, 2)
		_, err := c.WriteLTXFile(context.Background(), 0, txid, txid, bytes.NewReader(b), time.Now())
		want := "bytes of the " + strconv.Itoa(len(b)) + " uploaded"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("write %d through a proxy that cuts uploads short: %v; want an error with %q", txid, err, want)
		}
	}
	if puts.Load() == 0 {
		t.Fatal("the proxy saw no upload")
	}
	if n := moves.Load(); n != 0 {
		t.Fatalf("%d MOVE requests for short uploads; want none", n)
	}
	dir := filepath.Join(srv.Dir, filepath.FromSlash(p), "ltx", "0")
	if names := dirNames(t, dir); len(names) != 1 || names[0] != "0000000000000001-0000000000000001.ltx" {
		t.Fatalf("after failed writes %s holds %v; want only the earlier file", dir, names)
	}
	got, err := os.ReadFile(filepath.Join(dir, "0000000000000001-0000000000000001.ltx"))
	if err != nil || !bytes.Equal(got, before) {
		t.Fatalf("the earlier file changed (%d bytes, %v) after a failed overwrite", len(got), err)
	}
}

// TestFailedUploadLeavesNothing fails the source reader halfway through a
// PUT of a seekable reader (streamed, not buffered): the write fails without
// retrying, and no file, temporary or final, stays on the server.
func TestFailedUploadLeavesNothing(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	p := srv.NewPath(t)
	c := open(t, srv, p, nil)
	write(t, c, 0, 1, 1, bytes.NewReader(storagetest.File(t, 1, 1, 1, 1)), time.Now())

	b := storagetest.File(t, 2, 2, 200, 2)
	r := &failingSeeker{r: bytes.NewReader(b), failAt: int64(len(b) / 2)}
	_, err := c.WriteLTXFile(context.Background(), 0, 2, 2, r, time.Now())
	if err == nil || !strings.Contains(err.Error(), "source failed") {
		t.Fatalf("a write whose reader failed: %v", err)
	}
	if r.read > r.failAt {
		t.Fatalf("%d bytes were read from a source that fails after %d: a reader failure must not be retried", r.read, r.failAt)
	}
	dir := filepath.Join(srv.Dir, filepath.FromSlash(p), "ltx", "0")
	if names := dirNames(t, dir); len(names) != 1 || names[0] != "0000000000000001-0000000000000001.ltx" {
		t.Fatalf("after a failed write %s holds %v", dir, names)
	}
}

// failingSeeker fails once failAt bytes have been read from its start.
type failingSeeker struct {
	r      *bytes.Reader
	failAt int64
	read   int64 // bytes read in all, across rewinds
}

func (f *failingSeeker) Read(p []byte) (int, error) {
	pos, _ := f.r.Seek(0, io.SeekCurrent)
	if pos >= f.failAt {
		return 0, errors.New("source failed")
	}
	if rest := f.failAt - pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := f.r.Read(p)
	f.read += int64(n)
	return n, err
}

func (f *failingSeeker) Seek(off int64, whence int) (int64, error) { return f.r.Seek(off, whence) }

// TestNonSeekableUpload writes readers that cannot seek: a small one (held
// in memory) and one larger than webdav.MemoryBuffer (spooled to a
// temporary file).
func TestNonSeekableUpload(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	c := open(t, srv, srv.NewPath(t), nil)
	small := storagetest.File(t, 1, 1, 2, 1)
	large := storagetest.File(t, 2, 2, webdav.MemoryBuffer/4096+100, 2)
	if len(large) <= webdav.MemoryBuffer {
		t.Fatalf("the large file has %d bytes, not more than %d", len(large), webdav.MemoryBuffer)
	}
	for _, b := range [][]byte{small, large} {
		hdr, _, err := ltx.PeekHeader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		info := write(t, c, 0, hdr.MinTXID, hdr.MaxTXID, io.MultiReader(bytes.NewReader(b)), time.Now())
		if info.Size != int64(len(b)) {
			t.Fatalf("wrote %d bytes; want %d", info.Size, len(b))
		}
		if got := readAll(t, c, 0, hdr.MinTXID, hdr.MaxTXID, 0, 0); !bytes.Equal(got, b) {
			t.Fatalf("a %d-byte file read back as %d bytes that differ", len(b), len(got))
		}
	}
}

// TestCredentialsNeverShown opens clients with a wrong password and a right
// one carried in the URL, and checks that neither String nor any error
// shows a password, while the errors name the destination and the file.
func TestCredentialsNeverShown(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	p := srv.NewPath(t)
	const wrong = "Wrong-Secret-8f3a9c"

	bad := open(t, srv, p, map[string]string{"password": wrong})
	ctx := context.Background()
	_, listErr := bad.LTXFiles(ctx, 0)
	_, writeErr := bad.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader([]byte("data")), time.Now())
	_, openErr := bad.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
	deleteErr := bad.DeleteLTXFiles(ctx, []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}})
	dest := strings.TrimPrefix(srv.URL, "webdav://")
	for name, err := range map[string]error{"list": listErr, "write": writeErr, "open": openErr, "delete": deleteErr} {
		if err == nil {
			t.Fatalf("%s with a wrong password succeeded", name)
		}
		msg := err.Error()
		if strings.Contains(msg, wrong) || strings.Contains(msg, srv.Password) {
			t.Fatalf("%s error shows a password: %s", name, msg)
		}
		if !strings.Contains(msg, "webdav://"+dest+p) || !strings.Contains(msg, "401") {
			t.Fatalf("%s error does not name the destination and the 401 answer: %s", name, msg)
		}
		if name != "list" && !strings.Contains(msg, "0000000000000001-0000000000000001.ltx") {
			t.Fatalf("%s error does not name the file: %s", name, msg)
		}
	}

	// The password in the URL works and is never shown.
	u := "webdav://" + url.UserPassword(srv.User, srv.Password).String() + "@" + dest + p
	good := openURL(t, u, nil)
	if s := good.String(); strings.Contains(s, srv.Password) || strings.Contains(s, srv.User) || s != "webdav://"+dest+p {
		t.Fatalf("String() = %q", s)
	}
	write(t, good, 0, 1, 1, bytes.NewReader(storagetest.File(t, 1, 1, 1, 1)), time.Now())

	// A server that is gone: the transport error shows no password either.
	srv.Process.Stop()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := good.LTXFiles(ctx, 0)
	if err == nil || strings.Contains(err.Error(), srv.Password) {
		t.Fatalf("listing a stopped server: %v", err)
	}
}

func openURL(t *testing.T, rawURL string, keys map[string]string) *webdav.Client {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := webdav.Open(context.Background(), storage.Spec{URL: u, Keys: keys})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return c
}

// TestPasswordFromEnvironment opens with the user in the URL and the
// password in WALSHIP_WEBDAV_PASSWORD.
func TestPasswordFromEnvironment(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	t.Setenv(webdav.EnvPassword, srv.Password)
	c := openURL(t, "webdav://"+srv.User+"@"+strings.TrimPrefix(srv.URL, "webdav://")+srv.NewPath(t), nil)
	write(t, c, 0, 1, 1, bytes.NewReader(storagetest.File(t, 1, 1, 1, 1)), time.Now())
	if files, err := c.LTXFiles(context.Background(), 0); err != nil || len(files) != 1 {
		t.Fatalf("list: %v %v", files, err)
	}
}

// TestTLSVerification checks that an https server whose certificate is not
// trusted is refused, quickly and without retries, and that skip-verify or
// ca-file lets the client in.
func TestTLSVerification(t *testing.T) {
	srv := testserver.RcloneWebDAVS(t)
	p := srv.NewPath(t)

	untrusted := open(t, srv, p, nil)
	start := time.Now()
	_, err := untrusted.LTXFiles(context.Background(), 0)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a self-signed certificate was not refused: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("refusing the certificate took %s: it was retried", d)
	}

	for _, keys := range []map[string]string{{"skip-verify": "true"}, {"ca-file": srv.CAFile}} {
		c := open(t, srv, p, keys)
		b := storagetest.File(t, 1, 1, 1, 1)
		write(t, c, 0, 1, 1, bytes.NewReader(b), time.Now())
		if got := readAll(t, c, 0, 1, 1, 0, 0); !bytes.Equal(got, b) {
			t.Fatalf("%v: read back differs", keys)
		}
	}
}

// TestTransfersReleased checks that every upload and download gives its
// transfer slot back, downloads when their reader is closed, and failures
// too: with one slot, each next operation would otherwise wait forever.
func TestTransfersReleased(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	u, err := url.Parse(srv.URL + srv.NewPath(t))
	if err != nil {
		t.Fatal(err)
	}
	transfers := storage.NewTransfers(1, 1<<20)
	c, err := webdav.Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"user": srv.User, "password": srv.Password}, Transfers: transfers})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := storagetest.File(t, 1, 1, 1, 1)
	for i := range 3 {
		if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(b), time.Now()); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if _, err := c.WriteLTXFile(ctx, 0, 2, 2, io.MultiReader(&failing{}), time.Now()); err == nil {
			t.Fatal("a write whose reader failed succeeded")
		}
		rc, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		// The slot is held while the reader is open.
		held, hcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		if _, err := c.WriteLTXFile(held, 0, 3, 3, bytes.NewReader(b), time.Now()); err == nil {
			t.Fatal("a write ran while a download held the only transfer slot")
		}
		hcancel()
		rc.Close()
		if _, err := c.OpenLTXFile(ctx, 0, 9, 9, 0, 0); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("open a missing file: %v", err)
		}
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("source failed") }

// TestRetries runs writes, listings, reads and deletes through a proxy that
// fails a fifth of the requests (500s, 503s, reset connections, slow
// answers): every operation must still succeed, and the data be intact.
func TestRetries(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	proxy := testserver.NewFaultProxy(t, srv.HTTPURL, 0.2)
	p := srv.NewPath(t)
	c := openURL(t, strings.Replace(proxy.URL, "http://", "webdav://", 1)+p,
		map[string]string{"user": srv.User, "password": srv.Password})

	ctx := context.Background()
	var infos []*ltx.FileInfo
	data := map[ltx.TXID][]byte{}
	for txid := ltx.TXID(1); txid <= 12; txid++ {
		b := storagetest.File(t, txid, txid, 3, uint64(txid))
		data[txid] = b
		info, err := c.WriteLTXFile(ctx, 0, txid, txid, bytes.NewReader(b), time.Now())
		if err != nil {
			t.Fatalf("write %d through the fault proxy (%s): %v", txid, proxy.Summary(), err)
		}
		infos = append(infos, info)
	}
	files, err := c.LTXFiles(ctx, 0)
	if err != nil || len(files) != 12 {
		t.Fatalf("list through the fault proxy: %d files, %v", len(files), err)
	}
	if err := c.DeleteLTXFiles(ctx, infos[:6]); err != nil {
		t.Fatalf("delete through the fault proxy: %v", err)
	}
	if proxy.Count(testserver.FaultInternal)+proxy.Count(testserver.FaultSlowDown)+proxy.Count(testserver.FaultResetBefore)+proxy.Count(testserver.FaultResetDuring) == 0 {
		t.Fatalf("the proxy injected no failure: %s", proxy.Summary())
	}
	t.Logf("fault proxy: %s", proxy.Summary())

	// Check the result straight from the server.
	direct := open(t, srv, p, nil)
	files, err = direct.LTXFiles(ctx, 0)
	if err != nil || len(files) != 6 || files[0].MinTXID != 7 {
		t.Fatalf("after deleting 1-6: %+v, %v", files, err)
	}
	for _, f := range files {
		if got := readAll(t, direct, 0, f.MinTXID, f.MaxTXID, 0, 0); !bytes.Equal(got, data[f.MinTXID]) {
			t.Fatalf("file %s differs after writes with retries", f.MinTXID)
		}
	}
	if names := dirNames(t, filepath.Join(srv.Dir, filepath.FromSlash(p), "ltx", "0")); len(names) != 6 {
		t.Fatalf("the level directory holds %v; want the 6 files and no temp file", names)
	}
}

// TestServerWithoutMtime runs against golang.org/x/net/webdav, a WebDAV
// server that ignores X-OC-Mtime: writes still work, report the time the
// server stamped, and the client warns once that point-in-time restores will
// use upload times.
func TestServerWithoutMtime(t *testing.T) {
	var logs testutil.SyncBuffer
	h := &xwebdav.Handler{FileSystem: xwebdav.Dir(t.TempDir()), LockSystem: xwebdav.NewMemLS()}
	ts := httptest.NewServer(h)
	defer ts.Close()
	u, _ := url.Parse(strings.Replace(ts.URL, "http://", "webdav://", 1) + "/db")
	c, err := webdav.Open(context.Background(), storage.Spec{URL: u, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for txid := ltx.TXID(1); txid <= 3; txid++ {
		info := write(t, c, 0, txid, txid, bytes.NewReader(storagetest.File(t, txid, txid, 1, 1)), old)
		if info.CreatedAt.Equal(old) || time.Since(info.CreatedAt) > time.Hour {
			t.Fatalf("write returned created-at %s; want the upload time the server stamped", info.CreatedAt)
		}
	}
	if n := strings.Count(logs.String(), "does not keep the file times"); n != 1 {
		t.Fatalf("warned %d times; want once. Log:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "webdav://"+u.Host+"/db") {
		t.Fatalf("the warning does not name the replica:\n%s", logs.String())
	}
}

// TestServerIgnoresRange reads through a WebDAV server that answers every
// GET with the whole file (200): the client skips to the offset itself.
func TestServerIgnoresRange(t *testing.T) {
	h := &xwebdav.Handler{FileSystem: xwebdav.Dir(t.TempDir()), LockSystem: xwebdav.NewMemLS()}
	var ranged sync.Map
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			ranged.Store(r.URL.Path, true)
			r.Header.Del("Range")
		}
		h.ServeHTTP(w, r)
	}))
	defer ts.Close()
	u, _ := url.Parse(strings.Replace(ts.URL, "http://", "webdav://", 1) + "/db")
	c, err := webdav.Open(context.Background(), storage.Spec{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	b := storagetest.File(t, 1, 1, 5, 3)
	write(t, c, 0, 1, 1, bytes.NewReader(b), time.Now())
	n := int64(len(b))
	for _, r := range [][2]int64{{0, 100}, {n - ltx.TrailerSize, ltx.TrailerSize}, {1000, 0}, {n, 0}, {n + 10, 5}} {
		want := []byte{}
		if r[0] < n {
			want = b[r[0]:]
			if r[1] > 0 {
				want = b[r[0]:min(r[0]+r[1], n)]
			}
		}
		if got := readAll(t, c, 0, 1, 1, r[0], r[1]); !bytes.Equal(got, want) {
			t.Fatalf("read offset %d size %d: got %d bytes, want %d", r[0], r[1], len(got), len(want))
		}
	}
	if _, ok := ranged.Load("/db/ltx/0/0000000000000001-0000000000000001.ltx"); !ok {
		t.Fatal("the client sent no Range header")
	}
}

// TestMoveAnswerLost: the server moves an uploaded file into place and the
// answer is lost. The retry must not send the MOVE again: a server built on
// golang.org/x/net/webdav deletes the destination of a MOVE with
// Overwrite: T before it finds the source gone, which would delete the
// file just written.
func TestMoveAnswerLost(t *testing.T) {
	h := &xwebdav.Handler{FileSystem: xwebdav.Dir(t.TempDir()), LockSystem: xwebdav.NewMemLS()}
	var moves atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "MOVE" && moves.Add(1) == 1 {
			h.ServeHTTP(httptest.NewRecorder(), r) // the server moves the file...
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close() // ...and its answer never arrives
			}
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer ts.Close()
	u, _ := url.Parse(strings.Replace(ts.URL, "http://", "webdav://", 1) + "/db")
	c, err := webdav.Open(context.Background(), storage.Spec{URL: u, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	b := storagetest.File(t, 1, 1, 3, 1)
	if _, err := c.WriteLTXFile(context.Background(), 0, 1, 1, bytes.NewReader(b), time.Now()); err != nil {
		t.Fatalf("write whose MOVE answer was lost: %v", err)
	}
	if moves.Load() != 1 {
		t.Fatalf("the client sent %d MOVEs; after the first moved the file, none more may go", moves.Load())
	}
	if got := readAll(t, c, 0, 1, 1, 0, 0); !bytes.Equal(got, b) {
		t.Fatal("the file is not there after a MOVE whose answer was lost")
	}
}
