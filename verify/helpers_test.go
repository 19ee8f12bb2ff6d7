package verify_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"
	_ "modernc.org/sqlite"

	"github.com/walship/walship"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
	"github.com/walship/walship/verify"
)

// source is a real SQLite database replicated by the engine, through the
// walship package's exported API only, to a directory replica.
type source struct {
	t       *testing.T
	dir     string
	path    string // the database
	staging string // its staging directory
	replica *file.Client
	app     *sql.DB
	db      *walship.DB
	rows    int
	salt    string // in every row: two sources with different salts are different databases
}

// newSource creates a database with a table and opens the replicator on it.
// Compaction runs only when the test calls compact, and retention never.
func newSource(t *testing.T, salt string) *source {
	t.Helper()
	dir := t.TempDir()
	s := &source{t: t, dir: dir, path: filepath.Join(dir, "app.db"), staging: filepath.Join(dir, "staging"),
		replica: file.New(filepath.Join(dir, "replica")), salt: salt}
	s.openApp()
	if _, err := s.app.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	s.open()
	return s
}

// openApp opens the application's connection.
func (s *source) openApp() {
	s.t.Helper()
	app, err := sql.Open("sqlite", "file:"+s.path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)")
	if err != nil {
		s.t.Fatal(err)
	}
	app.SetMaxOpenConns(1)
	s.t.Cleanup(func() { app.Close() })
	s.app = app
}

// open starts the replicator on the database.
func (s *source) open() {
	s.t.Helper()
	s.openWith(walship.Options{RetentionDisabled: true})
}

// openWith starts the replicator with opts, over two compaction levels
// that merge only when the test says.
func (s *source) openWith(opts walship.Options) {
	s.t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	opts.MetaPath = s.staging
	opts.Levels = []time.Duration{time.Hour, time.Hour}
	db, err := walship.NewDB(s.path, opts, walship.NewReplica("test", s.replica))
	if err != nil {
		s.t.Fatal(err)
	}
	if err := db.Open(context.Background()); err != nil {
		s.t.Fatal(err)
	}
	s.db = db
	s.t.Cleanup(func() { s.close() })
}

// close stops the replicator (it captures what was committed, and uploads
// nothing).
func (s *source) close() {
	if s.db != nil {
		if err := s.db.Close(context.Background()); err != nil {
			s.t.Error(err)
		}
		s.db = nil
	}
}

// commit writes one transaction of n rows.
func (s *source) commit(n int) {
	s.t.Helper()
	tx, err := s.app.Begin()
	if err != nil {
		s.t.Fatal(err)
	}
	for range n {
		s.rows++
		if _, err := tx.Exec("INSERT INTO t (id, v) VALUES (?, ?)", s.rows, s.rowText()); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		s.t.Fatal(err)
	}
}

// rowText is the value of the newest row: different in every row and every
// source. (Rows alike but for a byte at the same place in each page could
// give two databases one checksum: the LTX database checksum is an XOR of
// CRCs, which equal changes to an even number of pages cancel.)
func (s *source) rowText() string {
	sum := sha256.Sum256([]byte(fmt.Sprint(s.salt, s.rows)))
	return fmt.Sprintf("row %d %s", s.rows, strings.Repeat(hex.EncodeToString(sum[:]), 5))
}

// step commits a transaction, stages it (one TXID) and uploads it.
func (s *source) step() {
	s.t.Helper()
	s.commit(3)
	s.stage()
	s.upload()
}

func (s *source) stage() {
	s.t.Helper()
	if _, err := s.db.Sync(context.Background()); err != nil {
		s.t.Fatal(err)
	}
}

func (s *source) upload() {
	s.t.Helper()
	if err := walship.Upload(context.Background(), s.db); err != nil {
		s.t.Fatal(err)
	}
}

func (s *source) compact(level int) {
	s.t.Helper()
	if _, err := s.db.Compact(context.Background(), level); err != nil {
		s.t.Fatal(err)
	}
	s.upload()
}

func (s *source) snapshot() {
	s.t.Helper()
	if err := s.db.SnapshotIfChanged(context.Background()); err != nil {
		s.t.Fatal(err)
	}
	s.upload()
}

// history replicates a history that fills every level the engine writes:
// TXID 1 (with its snapshot), level-1 and level-2 merges, a second
// snapshot, and level-0 files after the last merge. It returns the newest
// TXID.
func (s *source) history() ltx.TXID {
	s.t.Helper()
	for range 4 {
		s.step()
	}
	s.compact(1)
	for range 3 {
		s.step()
	}
	s.compact(1)
	s.compact(2)
	s.snapshot()
	for range 3 {
		s.step()
	}
	s.compact(1)
	for range 2 {
		s.step()
	}
	return s.db.Pos().TXID
}

// files lists one level of the replica.
func (s *source) files(level int) []*ltx.FileInfo {
	s.t.Helper()
	files, err := s.replica.LTXFiles(context.Background(), level)
	if err != nil {
		s.t.Fatal(err)
	}
	return files
}

// path returns the path of a replica file.
func (s *source) filePath(f *ltx.FileInfo) string {
	return s.replica.LTXFilePath(f.Level, f.MinTXID, f.MaxTXID)
}

// check verifies the replica and fails the test if the check itself fails.
func (s *source) check() *verify.Report {
	s.t.Helper()
	r, err := verify.Replica(context.Background(), s.replica, verify.Options{Parallelism: 3})
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// replaceFile writes b in place of a replica file, keeping its time. The
// replica file may be a hard link of a staged one, so it is replaced, never
// changed in place.
func replaceFile(t *testing.T, path string, b []byte) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// flipPageByte flips one byte in the middle of the first page's compressed
// data of an LTX file: the page still has the shape of a page, so only the
// checksums can tell.
func flipPageByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := ltx.HeaderSize + ltx.PageHeaderSize
	flags := binary.BigEndian.Uint16(b[ltx.HeaderSize+4:])
	n := len(b) - off - ltx.TrailerSize // old format: up to the index
	if flags&ltx.PageHeaderFlagSize != 0 {
		n = int(binary.BigEndian.Uint32(b[off:]))
		off += 4
	}
	b = bytes.Clone(b)
	b[off+n/2] ^= 0x55
	replaceFile(t, path, b)
}

// problemsOf returns the problems of kind k.
func problemsOf(r *verify.Report, k verify.Kind) []verify.Problem {
	var out []verify.Problem
	for _, p := range r.Problems {
		if p.Kind == k {
			out = append(out, p)
		}
	}
	return out
}

// mustFind returns the problem of kind k about object, failing the test
// with the whole report if there is none.
func mustFind(t *testing.T, r *verify.Report, k verify.Kind, object string) verify.Problem {
	t.Helper()
	for _, p := range r.Problems {
		if p.Kind == k && p.Object == object {
			if p.Message == "" || p.Fix == "" {
				t.Errorf("problem %+v lacks a message or a fix", p)
			}
			return p
		}
	}
	t.Fatalf("no %q problem about %s; the report has:\n%s", k, object, dump(r))
	return verify.Problem{}
}

// dump formats a report's problems for a failure message.
func dump(r *verify.Report) string {
	var b strings.Builder
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  [%s] %s: %s\n      fix: %s\n", p.Kind, p.Object, p.Message, p.Fix)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return b.String()
}

// readAll returns the contents of a file of the replica.
func readAll(t *testing.T, c storage.Client, f *ltx.FileInfo) []byte {
	t.Helper()
	rc, err := c.OpenLTXFile(context.Background(), f.Level, f.MinTXID, f.MaxTXID, 0, 0)
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

// withoutChecksums re-encodes an LTX file as Litestream writes it: the same
// pages, without pre- and post-apply database checksums.
func withoutChecksums(t *testing.T, b []byte) []byte {
	t.Helper()
	dec := ltx.NewDecoder(bytes.NewReader(b))
	if err := dec.DecodeHeader(); err != nil {
		t.Fatal(err)
	}
	hdr := dec.Header()
	hdr.Flags |= ltx.HeaderFlagNoChecksum
	hdr.PreApplyChecksum = 0
	var out bytes.Buffer
	enc, err := ltx.NewEncoder(&out)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		t.Fatal(err)
	}
	page := make([]byte, hdr.PageSize)
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, page); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if err := enc.EncodePage(ph, page); err != nil {
			t.Fatal(err)
		}
	}
	if err := dec.Close(); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
