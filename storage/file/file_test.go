package file_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// snapshotLTX returns the bytes of a one-page snapshot LTX file.
func snapshotLTX(t *testing.T, txid ltx.TXID, ts time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.EncodeHeader(ltx.Header{
		Version:   ltx.Version,
		PageSize:  512,
		Commit:    1,
		MinTXID:   txid,
		MaxTXID:   txid,
		Timestamp: ts.UnixMilli(),
	}); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{byte(txid)}, 512)
	if err := enc.EncodePage(ltx.PageHeader{Pgno: 1}, data); err != nil {
		t.Fatal(err)
	}
	enc.SetPostApplyChecksum(ltx.ChecksumFlag | ltx.ChecksumPage(1, data))
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func levelDir(dir string, level int) string {
	return filepath.Join(dir, "ltx", strconv.Itoa(level))
}

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

func readAll(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	defer func() {
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	c := file.New(dir)
	if got, want := c.Type(), "file"; got != want {
		t.Errorf("Type() = %q, want %q", got, want)
	}
	if got, want := c.String(), "file://"+dir; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := c.Dir(); got != dir {
		t.Errorf("Dir() = %q, want %q", got, dir)
	}

	t.Chdir(dir)
	rel := file.New("replica")
	if want := filepath.Join(dir, "replica"); rel.Dir() != want {
		t.Errorf("relative Dir() = %q, want %q", rel.Dir(), want)
	}
	if !filepath.IsAbs(rel.Dir()) {
		t.Errorf("Dir() %q not absolute", rel.Dir())
	}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := file.New(dir)
	createdAt := time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.FixedZone("X", 3600))
	data := snapshotLTX(t, 1, createdAt)

	info, err := c.WriteLTXFile(ctx, storage.SnapshotLevel, 1, 1, bytes.NewReader(data), createdAt)
	if err != nil {
		t.Fatal(err)
	}
	want := ltx.FileInfo{Level: 9, MinTXID: 1, MaxTXID: 1, Size: int64(len(data)), CreatedAt: createdAt.UTC()}
	if *info != want {
		t.Errorf("WriteLTXFile info = %+v, want %+v", *info, want)
	}

	// Exact Litestream 0.5 layout, and nothing else in the directory.
	path := filepath.Join(dir, "ltx", "9", "0000000000000001-0000000000000001.ltx")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Truncate(time.Millisecond).Equal(createdAt.Truncate(time.Millisecond)) {
		t.Errorf("mtime = %v, want %v", fi.ModTime(), createdAt)
	}
	if names := dirNames(t, filepath.Join(dir, "ltx", "9")); len(names) != 1 {
		t.Errorf("level dir holds %v, want only the LTX file", names)
	}

	infos, err := c.LTXFiles(ctx, storage.SnapshotLevel)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 {
		t.Fatalf("LTXFiles = %d files, want 1", len(infos))
	}
	got := *infos[0]
	if got.Level != 9 || got.MinTXID != 1 || got.MaxTXID != 1 || got.Size != int64(len(data)) {
		t.Errorf("LTXFiles[0] = %+v, want %+v", got, want)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt location = %v, want UTC", got.CreatedAt.Location())
	}
	if got.CreatedAt.UnixMilli() != createdAt.UnixMilli() {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, createdAt)
	}

	// Whole file, and it decodes as a valid LTX file.
	rc, err := c.OpenLTXFile(ctx, 9, 1, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := readAll(t, rc)
	if !bytes.Equal(b, data) {
		t.Fatal("read bytes differ from written bytes")
	}
	dec := ltx.NewDecoder(bytes.NewReader(b))
	if err := dec.Verify(); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if ts := dec.Header().Timestamp; ts != createdAt.UnixMilli() {
		t.Errorf("header timestamp = %d, want %d", ts, createdAt.UnixMilli())
	}

	// Offset and size.
	for _, tc := range []struct{ offset, size int64 }{
		{0, ltx.HeaderSize},
		{10, 20},
		{100, 0},
		{int64(len(data)) - 5, 100}, // size past the end
		{int64(len(data)), 0},       // at the end
		{int64(len(data)) + 10, 5},  // beyond the end
	} {
		rc, err := c.OpenLTXFile(ctx, 9, 1, 1, tc.offset, tc.size)
		if err != nil {
			t.Fatalf("offset %d size %d: %v", tc.offset, tc.size, err)
		}
		got := readAll(t, rc)
		lo := min(tc.offset, int64(len(data)))
		hi := int64(len(data))
		if tc.size > 0 {
			hi = min(lo+tc.size, hi)
		}
		if !bytes.Equal(got, data[lo:hi]) {
			t.Errorf("offset %d size %d: got %d bytes, want data[%d:%d]", tc.offset, tc.size, len(got), lo, hi)
		}
	}

	// Overwrite replaces the content.
	data2 := snapshotLTX(t, 1, createdAt.Add(time.Second))
	data2 = append(data2, 'x')
	if _, err := c.WriteLTXFile(ctx, 9, 1, 1, bytes.NewReader(data2), createdAt.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	rc, err = c.OpenLTXFile(ctx, 9, 1, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, rc), data2) {
		t.Error("overwrite: content not replaced")
	}

	// Delete, twice (already gone is not an error), and a nil entry.
	if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{info, nil}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{info}); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("file still exists after delete: %v", err)
	}
	infos, err = c.LTXFiles(ctx, 9)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 0 {
		t.Errorf("LTXFiles after delete = %d files, want 0", len(infos))
	}
	if _, err := c.OpenLTXFile(ctx, 9, 1, 1, 0, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("open after delete: err = %v, want ErrNotFound", err)
	}
}

func TestLTXFiles_SortAndFilter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := file.New(dir)
	ts := time.UnixMilli(1_700_000_000_000)

	ranges := [][2]ltx.TXID{{5, 9}, {1, 3}, {1, 1}, {0x10, 0x10}, {4, 4}, {1, 2}, {0xa, 0xf}}
	for i, r := range ranges {
		if _, err := c.WriteLTXFile(ctx, 0, r[0], r[1], strings.NewReader(strings.Repeat("x", i+1)), ts.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}

	ld := levelDir(dir, 0)
	junk := []string{
		"README",
		"0000000000000001-0000000000000001.ltx.bak",
		"0000000000000001-0000000000000001",
		"000000000000001-0000000000000001.ltx",  // 15 digits
		"000000000000000A-000000000000000A.ltx", // upper case
		".0000000000000002-0000000000000002.ltx",
		".0000000000000002-0000000000000002.ltx.tmp-1234",
		"0000000000000002-0000000000000002.ltx.tmp-1234",
	}
	for _, name := range junk {
		if err := os.WriteFile(filepath.Join(ld, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A directory with a valid name is not a file.
	if err := os.Mkdir(filepath.Join(ld, "0000000000000007-0000000000000007.ltx"), 0o755); err != nil {
		t.Fatal(err)
	}

	infos, err := c.LTXFiles(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]ltx.TXID{{1, 1}, {1, 2}, {1, 3}, {4, 4}, {5, 9}, {0xa, 0xf}, {0x10, 0x10}}
	if len(infos) != len(want) {
		t.Fatalf("LTXFiles = %d files, want %d", len(infos), len(want))
	}
	for i, info := range infos {
		if info.MinTXID != want[i][0] || info.MaxTXID != want[i][1] || info.Level != 0 {
			t.Errorf("LTXFiles[%d] = level %d %s-%s, want %s-%s", i, info.Level, info.MinTXID, info.MaxTXID, want[i][0], want[i][1])
		}
	}
	// Each file's size and mtime match what was written.
	for i, r := range ranges {
		for _, info := range infos {
			if info.MinTXID == r[0] && info.MaxTXID == r[1] {
				if info.Size != int64(i+1) {
					t.Errorf("%s-%s: size %d, want %d", r[0], r[1], info.Size, i+1)
				}
				if wantTS := ts.Add(time.Duration(i) * time.Second); !info.CreatedAt.Equal(wantTS) {
					t.Errorf("%s-%s: CreatedAt %v, want %v", r[0], r[1], info.CreatedAt, wantTS)
				}
			}
		}
	}

	// Other levels are separate.
	if infos, err := c.LTXFiles(ctx, 1); err != nil || len(infos) != 0 {
		t.Errorf("level 1 = %v, %v; want empty", infos, err)
	}
}

func TestLTXFiles_MissingLevel(t *testing.T) {
	ctx := context.Background()
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "does", "not", "exist")} {
		c := file.New(dir)
		infos, err := c.LTXFiles(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		if infos == nil || len(infos) != 0 {
			t.Errorf("LTXFiles(%s) = %#v, want empty non-nil slice", dir, infos)
		}
	}
}

func TestInvalidLevel(t *testing.T) {
	ctx := context.Background()
	c := file.New(t.TempDir())
	for _, level := range []int{-1, storage.MaxLevel + 1} {
		if _, err := c.LTXFiles(ctx, level); err == nil {
			t.Errorf("LTXFiles(%d): no error", level)
		}
		if _, err := c.WriteLTXFile(ctx, level, 1, 1, strings.NewReader("x"), time.Now()); err == nil {
			t.Errorf("WriteLTXFile(%d): no error", level)
		}
		if _, err := c.OpenLTXFile(ctx, level, 1, 1, 0, 0); err == nil {
			t.Errorf("OpenLTXFile(%d): no error", level)
		}
	}
	if _, err := c.WriteLTXFile(ctx, 0, 3, 2, strings.NewReader("x"), time.Now()); err == nil {
		t.Error("WriteLTXFile(min > max): no error")
	}
	if _, err := c.WriteLTXFile(ctx, 0, 0, 2, strings.NewReader("x"), time.Now()); err == nil {
		t.Error("WriteLTXFile(min = 0): no error")
	}
}

func TestOpenLTXFile_NotFound(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := file.New(dir)

	_, err := c.OpenLTXFile(ctx, 0, 1, 2, 0, 0)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	t.Log(err)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want it to wrap os.ErrNotExist too", err)
	}
	path := filepath.Join(dir, "ltx", "0", "0000000000000001-0000000000000002.ltx")
	if !strings.Contains(err.Error(), path) {
		t.Errorf("err %q does not name %s", err, path)
	}
	if !strings.HasPrefix(err.Error(), "replica file://"+dir+": ") {
		t.Errorf("err %q does not name the replica", err)
	}

	// Level exists, file does not.
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, strings.NewReader("x"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenLTXFile(ctx, 0, 1, 2, 0, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

func TestOpenLTXFile_InvalidRange(t *testing.T) {
	ctx := context.Background()
	c := file.New(t.TempDir())
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, strings.NewReader("abc"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenLTXFile(ctx, 0, 1, 1, -1, 0); err == nil {
		t.Error("negative offset: no error")
	}
	if _, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, -1); err == nil {
		t.Error("negative size: no error")
	}
}

func TestWriteLTXFile_CancelledContext(t *testing.T) {
	dir := t.TempDir()
	c := file.New(dir)
	data := snapshotLTX(t, 1, time.Now())

	// Cancelled before the call.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(data), time.Now()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ltx", "0")); err == nil {
		if names := dirNames(t, filepath.Join(dir, "ltx", "0")); len(names) != 0 {
			t.Errorf("files left: %v", names)
		}
	}

	// Cancelled during the copy.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	r := &cancelAfterReader{r: bytes.NewReader(data), n: 100, cancel: cancel}
	_, err := c.WriteLTXFile(ctx, 0, 1, 1, r, time.Now())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if names := dirNames(t, filepath.Join(dir, "ltx", "0")); len(names) != 0 {
		t.Errorf("files left: %v", names)
	}
	if _, err := c.OpenLTXFile(context.Background(), 0, 1, 1, 0, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("open: err = %v, want ErrNotFound", err)
	}
}

// cancelAfterReader returns at most n bytes per read and cancels after the first.
type cancelAfterReader struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (r *cancelAfterReader) Read(p []byte) (int, error) {
	if len(p) > r.n {
		p = p[:r.n]
	}
	n, err := r.r.Read(p)
	r.cancel()
	return n, err
}

type failingReader struct {
	n   int
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		n := min(len(p), r.n)
		r.n -= n
		return n, nil
	}
	return 0, r.err
}

func TestWriteLTXFile_ReaderError(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := file.New(dir)

	// An existing file must survive a failed overwrite.
	if _, err := c.WriteLTXFile(ctx, 2, 1, 5, strings.NewReader("old"), time.Now()); err != nil {
		t.Fatal(err)
	}

	boom := errors.New("boom")
	_, err := c.WriteLTXFile(ctx, 2, 1, 5, &failingReader{n: 1000, err: boom}, time.Now())
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	t.Log(err)
	want := "replica file://" + dir + ": write level 2 file 0000000000000001-0000000000000005.ltx: "
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %q, want prefix %q", err, want)
	}
	names := dirNames(t, filepath.Join(dir, "ltx", "2"))
	if len(names) != 1 || names[0] != "0000000000000001-0000000000000005.ltx" {
		t.Errorf("level dir holds %v, want only the old file", names)
	}
	rc, err := c.OpenLTXFile(ctx, 2, 1, 5, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(readAll(t, rc)); got != "old" {
		t.Errorf("content = %q, want old", got)
	}
}

func TestWriteLTXFile_DirReplacedByFile(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	dir := filepath.Join(parent, "replica")
	c := file.New(dir)
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, strings.NewReader("x"), time.Now()); err != nil {
		t.Fatal(err)
	}

	// The directory disappears and a regular file takes its place.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a dir"), 0o644); err != nil {
		t.Fatal(err)
	}

	_, err := c.WriteLTXFile(ctx, 0, 2, 2, strings.NewReader("x"), time.Now())
	if err == nil {
		t.Fatal("WriteLTXFile: no error")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), dir+":") && !strings.Contains(err.Error(), dir+"/") {
		t.Errorf("err %q does not name %s", err, dir)
	}
	if !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("err %q does not give the cause", err)
	}
	if !strings.HasPrefix(err.Error(), "replica file://"+dir+": write level 0 file 0000000000000002-0000000000000002.ltx: ") {
		t.Errorf("err %q lacks the replica and file", err)
	}
	if b, _ := os.ReadFile(dir); string(b) != "not a dir" {
		t.Error("the file in place of the directory was modified")
	}

	// Listing and opening fail with errors too, rather than "empty" or "not found".
	_, err = c.LTXFiles(ctx, 0)
	if err == nil {
		t.Fatal("LTXFiles: no error")
	}
	t.Log(err)
	if want := "replica file://" + dir + ": list level 0: "; !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), dir) {
		t.Errorf("LTXFiles err = %q, want prefix %q", err, want)
	}
	if _, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("OpenLTXFile err = %v, want a non-ErrNotFound error", err)
	}
}

// An unwritable level directory: a read-only directory for a normal user;
// for root, which ignores permissions, a read-only file system mounted there.
func TestWriteLTXFile_Unwritable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := file.New(dir)
	if err := os.MkdirAll(filepath.Join(dir, "ltx", "0"), 0o755); err != nil {
		t.Fatal(err)
	}
	ld := filepath.Join(dir, "ltx", "0")
	want := os.ErrPermission
	if os.Geteuid() == 0 {
		if err := syscall.Mount("tmpfs", ld, "tmpfs", syscall.MS_RDONLY, "size=64k"); err != nil {
			t.Fatalf("mount a read-only tmpfs (root): %v", err)
		}
		t.Cleanup(func() { _ = syscall.Unmount(ld, 0) })
		want = syscall.EROFS
	} else {
		if err := os.Chmod(ld, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(ld, 0o755) })
	}

	_, err := c.WriteLTXFile(ctx, 0, 1, 1, strings.NewReader("x"), time.Now())
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	t.Log(err)
	if !strings.Contains(err.Error(), ld) {
		t.Errorf("err %q does not name %s", err, ld)
	}
}

func TestDeleteLTXFiles(t *testing.T) {
	ctx := context.Background()
	c := file.New(t.TempDir())
	var infos []*ltx.FileInfo
	for level := range 2 {
		for txid := ltx.TXID(1); txid <= 3; txid++ {
			info, err := c.WriteLTXFile(ctx, level, txid, txid, strings.NewReader("x"), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			infos = append(infos, info)
		}
	}
	// Delete 1 and 3 on level 0, 2 on level 1, plus some that never existed.
	del := []*ltx.FileInfo{infos[0], infos[2], infos[4],
		{Level: 0, MinTXID: 7, MaxTXID: 8},
		{Level: 5, MinTXID: 1, MaxTXID: 1},
	}
	if err := c.DeleteLTXFiles(ctx, del); err != nil {
		t.Fatal(err)
	}
	check := func(level int, want ...ltx.TXID) {
		t.Helper()
		got, err := c.LTXFiles(ctx, level)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("level %d: %d files, want %d", level, len(got), len(want))
		}
		for i := range got {
			if got[i].MinTXID != want[i] {
				t.Errorf("level %d [%d] = %s, want %s", level, i, got[i].MinTXID, want[i])
			}
		}
	}
	check(0, 2)
	check(1, 1, 3)

	if err := c.DeleteLTXFiles(ctx, nil); err != nil {
		t.Errorf("empty delete: %v", err)
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.DeleteLTXFiles(ctx2, infos[1:2]); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled delete: err = %v", err)
	}
	check(0, 2)
}

func TestRemoveTempFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := file.New(dir)

	// Nothing there yet.
	if err := c.RemoveTempFiles(); err != nil {
		t.Fatal(err)
	}

	for _, level := range []int{0, 9} {
		if _, err := c.WriteLTXFile(ctx, level, 1, 1, strings.NewReader("x"), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	stale := []string{
		filepath.Join(levelDir(dir, 0), ".0000000000000002-0000000000000002.ltx.tmp-0123456789abcdef"),
		filepath.Join(levelDir(dir, 0), ".0000000000000003-0000000000000003.ltx.tmp-1"),
		filepath.Join(levelDir(dir, 9), ".0000000000000002-0000000000000002.ltx.tmp-abc"),
	}
	keep := []string{
		filepath.Join(levelDir(dir, 0), "0000000000000001-0000000000000001.ltx"),
		filepath.Join(levelDir(dir, 9), "0000000000000001-0000000000000001.ltx"),
		filepath.Join(levelDir(dir, 0), "notes.tmp-1"),
		filepath.Join(levelDir(dir, 0), ".keep"),
	}
	for _, p := range append(stale, keep[2:]...) {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if err := c.RemoveTempFiles(); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s not removed (%v)", p, err)
		}
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}

func TestConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	c := file.New(t.TempDir())
	ts := time.UnixMilli(1_700_000_000_000)
	errc := make(chan error, 20)
	for i := range 20 {
		go func() {
			txid := ltx.TXID(i%5 + 1)
			data := bytes.Repeat([]byte{byte(txid)}, 4096)
			_, err := c.WriteLTXFile(ctx, 0, txid, txid, bytes.NewReader(data), ts)
			errc <- err
		}()
	}
	for range 20 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	infos, err := c.LTXFiles(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 5 {
		t.Fatalf("got %d files, want 5", len(infos))
	}
	for _, info := range infos {
		rc, err := c.OpenLTXFile(ctx, 0, info.MinTXID, info.MaxTXID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if b := readAll(t, rc); !bytes.Equal(b, bytes.Repeat([]byte{byte(info.MinTXID)}, 4096)) {
			t.Errorf("%s: torn content", info.MinTXID)
		}
	}
}

// A whole staged file written into another directory of the same file system
// is linked, not copied; a file read in part, or with another timestamp, is
// copied.
func TestWriteLTXFile_LinksWholeFiles(t *testing.T) {
	ctx := context.Background()
	ts := time.Now().Truncate(time.Millisecond)
	staging, replica := file.New(t.TempDir()), file.New(t.TempDir())
	data := snapshotLTX(t, 1, ts)
	if _, err := staging.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(data), ts); err != nil {
		t.Fatal(err)
	}
	stagedPath := staging.LTXFilePath(0, 1, 1)
	open := func() *os.File {
		f, err := os.Open(stagedPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	sameInode := func(path string) bool {
		a, err := os.Stat(stagedPath)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return os.SameFile(a, b)
	}

	info, err := replica.WriteLTXFile(ctx, 9, 1, 1, open(), ts)
	if err != nil {
		t.Fatal(err)
	}
	if !sameInode(replica.LTXFilePath(9, 1, 1)) {
		t.Error("a whole staged file was copied, not linked")
	}
	if info.Size != int64(len(data)) || !info.CreatedAt.Equal(ts) {
		t.Errorf("linked file info %+v; want size %d, created %s", info, len(data), ts)
	}
	if got := readAll(t, mustOpen(t, replica, 9, 1, 1)); !bytes.Equal(got, data) {
		t.Error("the linked file's content differs")
	}

	f := open()
	if _, err := f.Seek(10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := replica.WriteLTXFile(ctx, 0, 1, 1, io.MultiReader(bytes.NewReader(data[:10]), f), ts); err != nil {
		t.Fatal(err)
	}
	if sameInode(replica.LTXFilePath(0, 1, 1)) {
		t.Error("a file behind another reader was linked")
	}
	g := open()
	if _, err := g.Seek(10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := replica.WriteLTXFile(ctx, 1, 1, 1, g, ts); err == nil && sameInode(replica.LTXFilePath(1, 1, 1)) {
		t.Error("a file read from the middle was linked")
	}
	if _, err := replica.WriteLTXFile(ctx, 2, 1, 1, open(), ts.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if sameInode(replica.LTXFilePath(2, 1, 1)) {
		t.Error("a file was linked under another timestamp")
	}
	if fi, err := os.Stat(stagedPath); err != nil || !fi.ModTime().Equal(ts) {
		t.Errorf("the staged file's timestamp changed: %v, %v", fi.ModTime(), err)
	}
}

func mustOpen(t *testing.T, c *file.Client, level int, minTXID, maxTXID ltx.TXID) io.ReadCloser {
	t.Helper()
	rc, err := c.OpenLTXFile(context.Background(), level, minTXID, maxTXID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}
