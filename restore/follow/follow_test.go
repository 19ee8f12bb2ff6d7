package follow_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"
	_ "modernc.org/sqlite"

	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore/follow"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

const pageSize = 4096

// primary is a real SQLite database whose state after each transaction
// (TXID 1, 2, ...) is kept whole, so LTX files of any range can be made
// from it as walship makes them: the pages that differ, or every page.
type primary struct {
	t      *testing.T
	db     *sql.DB
	states [][]byte // states[txid-1]
	seed   string
}

func newPrimary(t *testing.T, seed string) *primary {
	return newPrimaryWith(t, seed, "")
}

// newPrimaryWith runs first (a PRAGMA) before the table is created.
func newPrimaryWith(t *testing.T, seed, first string) *primary {
	path := filepath.Join(t.TempDir(), "primary.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	p := &primary{t: t, db: db, seed: seed}
	if first != "" {
		if _, err := db.Exec(first); err != nil {
			t.Fatal(err)
		}
	}
	p.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	return p
}

// exec runs one transaction and records the state after it.
func (p *primary) exec(q string, args ...any) ltx.TXID {
	p.t.Helper()
	if _, err := p.db.Exec(q, args...); err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		p.t.Fatal(err)
	}
	var path string
	if err := p.db.QueryRow("SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&path); err != nil {
		p.t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		p.t.Fatal(err)
	}
	p.states = append(p.states, b)
	return ltx.TXID(len(p.states))
}

// insert commits n rows in one transaction.
func (p *primary) insert(n int) ltx.TXID {
	return p.exec("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?) INSERT INTO t (v) SELECT ? || hex(randomblob(300)) FROM s", n, p.seed)
}

func (p *primary) state(txid ltx.TXID) []byte { return p.states[txid-1] }

// pageSizeOf reads the page size of a database state from its header.
func pageSizeOf(state []byte) int {
	if n := int(state[16])<<8 | int(state[17]); n != 1 {
		return n
	}
	return 65536
}

func checksum(state []byte) ltx.Checksum {
	sum := ltx.ChecksumFlag
	size := pageSizeOf(state)
	for i := 0; i < len(state); i += size {
		sum = ltx.ChecksumFlag | (sum ^ ltx.ChecksumPage(uint32(i/size)+1, state[i:i+size]))
	}
	return sum
}

// write stores the LTX file of TXIDs min-max at level (a snapshot when
// min is 1), checksums and all; mangle, if set, may change a page.
func (p *primary) write(c storage.Client, level int, min, max ltx.TXID, mangle func(pgno uint32, data []byte)) {
	p.t.Helper()
	s := p.state(max)
	var prev []byte
	if min > 1 {
		prev = p.state(min - 1)
	}
	size := pageSizeOf(s)
	if prev != nil && pageSizeOf(prev) != size {
		prev = prev[:0] // a full copy: every page, after the state of the other page size
	}
	hdr := ltx.Header{Version: ltx.Version, PageSize: uint32(size), Commit: uint32(len(s) / size), MinTXID: min, MaxTXID: max, Timestamp: time.Now().UnixMilli()}
	if min > 1 {
		hdr.PreApplyChecksum = checksum(p.state(min - 1))
	}
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		p.t.Fatal(err)
	}
	for off := 0; off < len(s); off += size {
		page := s[off : off+size]
		if prev != nil && off+size <= len(prev) && bytes.Equal(page, prev[off:off+size]) {
			continue
		}
		pgno := uint32(off/size) + 1
		data := append([]byte(nil), page...)
		if mangle != nil {
			mangle(pgno, data)
		}
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, data); err != nil {
			p.t.Fatal(err)
		}
	}
	enc.SetPostApplyChecksum(checksum(s))
	if err := enc.Close(); err != nil {
		p.t.Fatal(err)
	}
	if _, err := c.WriteLTXFile(context.Background(), level, min, max, &buf, time.Now()); err != nil {
		p.t.Fatal(err)
	}
}

// content is a database's pages as SQLite reads them, but for the bytes
// of page 1 a copy holds of its own.
func content(t *testing.T, path string) []byte {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b []byte
	rows, err := db.Query("SELECT data FROM sqlite_dbpage ORDER BY pgno")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var d []byte
		if err := rows.Scan(&d); err != nil {
			t.Fatal(err)
		}
		b = append(b, d...)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return normalized(b)
}

func normalized(state []byte) []byte {
	b := append([]byte(nil), state...)
	for _, r := range [][2]int{{18, 20}, {24, 32}, {92, 100}} {
		clear(b[r[0]:r[1]])
	}
	return b
}

// promoteExact promotes the stopped follower's copy at out, and requires
// the header given back and the promoted file to be want, the replica's
// state of txid, byte for byte.
func promoteExact(t *testing.T, out string, want []byte, txid ltx.TXID) {
	t.Helper()
	restored, err := follow.Promote(context.Background(), out)
	if err != nil || !restored {
		t.Fatalf("Promote = %v, %v; want the header restored", restored, err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the promoted copy is not the replica's state of TXID %s byte for byte", txid)
	}
}

// follower runs follow.Run in the background.
type follower struct {
	cancel  context.CancelFunc
	done    chan error
	applied chan follow.Status
	log     *bytes.Buffer
}

func startFollower(t *testing.T, c storage.Client, out string) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{cancel: cancel, done: make(chan error, 1), applied: make(chan follow.Status, 100), log: new(bytes.Buffer)}
	go func() {
		f.done <- follow.Run(ctx, c, out, follow.Options{
			Interval: 10 * time.Millisecond,
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			Applied:  func(s follow.Status) { f.applied <- s },
		})
	}()
	t.Cleanup(func() { f.stop(t) })
	return f
}

// waitTXID waits until the copy holds txid.
func (f *follower) waitTXID(t *testing.T, txid ltx.TXID) follow.Status {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-f.applied:
			if s.TXID == txid {
				return s
			}
		case err := <-f.done:
			f.cancel = nil
			t.Fatalf("the follower stopped before TXID %s: %v", txid, err)
		case <-deadline:
			t.Fatalf("the follower did not reach TXID %s", txid)
		}
	}
}

func (f *follower) stop(t *testing.T) {
	t.Helper()
	if f.cancel == nil {
		return
	}
	f.cancel()
	f.cancel = nil
	if err := <-f.done; err != nil {
		t.Fatalf("the follower failed: %v", err)
	}
}

func setup(t *testing.T) (*primary, storage.Client, string) {
	p := newPrimary(t, "a")
	c := file.New(filepath.Join(t.TempDir(), "replica"))
	return p, c, filepath.Join(t.TempDir(), "copy.db")
}

// TestFollowAppliesAndResumes: the copy is restored, follows new files,
// and after a stop goes on from its own state, the same as the primary's
// at every TXID it reaches.
func TestFollowAppliesAndResumes(t *testing.T) {
	p, c, out := setup(t)
	p.insert(5)
	p.insert(40)
	p.write(c, storage.SnapshotLevel, 1, 3, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 3)
	for range 3 {
		txid := p.insert(30)
		p.write(c, 0, txid, txid, nil)
		f.waitTXID(t, txid)
		if got := content(t, out); !bytes.Equal(got, normalized(p.state(txid))) {
			t.Fatalf("the copy is not the primary's state of TXID %s", txid)
		}
	}
	f.stop(t)
	// Rows deleted: the database shrinks.
	txid := p.exec("DELETE FROM t WHERE id > 20")
	p.exec("VACUUM")
	p.write(c, 0, txid, txid+1, nil)
	f = startFollower(t, c, out)
	if s := f.waitTXID(t, txid+1); s.Rebased {
		t.Fatal("the follower restored the copy again instead of going on from it")
	}
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(txid+1))) {
		t.Fatalf("the copy is not the primary's state of TXID %s", txid+1)
	}
	f.stop(t)
	// Beside the copy: its record and its lock, nothing downloaded or
	// left by the first restore.
	ents, err := os.ReadDir(filepath.Dir(out))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{".copy.db.follow", ".copy.db.follow-lock", "copy.db"}; !slices.Equal(names, want) {
		t.Fatalf("the copy's directory holds %q, want %q", names, want)
	}
}

// TestFollowNeverOverwrites: an output that is not a follower's copy, or
// a copy changed since, is never written.
func TestFollowNeverOverwrites(t *testing.T) {
	p, c, out := setup(t)
	p.insert(5)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)

	other := newPrimary(t, "b")
	other.insert(3)
	if err := os.WriteFile(out, other.state(2), 0o644); err != nil {
		t.Fatal(err)
	}
	err := follow.Run(context.Background(), c, out, follow.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, follow.ErrNotACopy) {
		t.Fatalf("following into a database of its own: %v, want ErrNotACopy", err)
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, other.state(2)) {
		t.Fatal("the database at the output was changed")
	}
	os.Remove(out)

	f := startFollower(t, c, out)
	f.waitTXID(t, 2)
	f.stop(t)
	db, err := sql.Open("sqlite", out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO t (v) VALUES ('written by someone else')"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	changed, _ := os.ReadFile(out)
	err = follow.Run(context.Background(), c, out, follow.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, follow.ErrNotACopy) {
		t.Fatalf("following a copy changed by another writer: %v, want ErrNotACopy", err)
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, changed) {
		t.Fatal("the changed copy was written")
	}
}

// TestFollowInterruptedCommit: a follower killed after it recorded both
// states and before SQLite committed (the record names the state after,
// the copy holds the one before) goes on from the state the copy holds.
func TestFollowInterruptedCommit(t *testing.T) {
	p, c, out := setup(t)
	p.insert(5)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 2)
	f.stop(t)

	rec := filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".follow")
	b, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	// The state after a commit that did not happen: another checksum.
	var r map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // checksums are 64-bit
	if err := dec.Decode(&r); err != nil {
		t.Fatal(err)
	}
	states := r["states"].([]any)
	after := map[string]any{}
	for k, v := range states[0].(map[string]any) {
		after[k] = v
	}
	after["txid"], after["checksum"] = 3, 12345
	r["states"] = append(states, after)
	if b, err = json.Marshal(r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rec, b, 0o644); err != nil {
		t.Fatal(err)
	}
	txid := p.insert(7)
	p.write(c, 0, txid, txid, nil)
	f = startFollower(t, c, out)
	f.waitTXID(t, txid)
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(txid))) {
		t.Fatalf("the copy is not the primary's state of TXID %s", txid)
	}
}

// TestFollowRebase: a follower whose next files retention deleted goes on
// from the newest snapshot; one whose state the replica does not hold
// (the replica was replaced by another history with the same TXIDs) too.
func TestFollowRebase(t *testing.T) {
	p, c, out := setup(t)
	p.insert(5)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 2)
	f.stop(t)
	for range 4 {
		p.insert(20)
	}
	p.write(c, storage.SnapshotLevel, 1, 6, nil) // and no file of 3-6 at any lower level
	f = startFollower(t, c, out)
	if s := f.waitTXID(t, 6); !s.Rebased {
		t.Fatal("the copy reached TXID 6 without the snapshot")
	}
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(6))) {
		t.Fatal("the copy is not the primary's state of TXID 6")
	}
	f.stop(t)

	// Another database's history, to the same TXID.
	q := newPrimary(t, "other")
	for range 5 {
		q.insert(9)
	}
	c2 := file.New(filepath.Join(t.TempDir(), "replica2"))
	q.write(c2, storage.SnapshotLevel, 1, 6, nil)
	f = startFollower(t, c2, out)
	if s := f.waitTXID(t, 6); !s.Rebased {
		t.Fatal("the copy took another history's TXID 6 for its own")
	}
	if got := content(t, out); !bytes.Equal(got, normalized(q.state(6))) {
		t.Fatal("the copy is not the new history's state of TXID 6")
	}
}

// TestFollowProvesBeforeApplying: a file whose pages do not give the state
// its checksum names is never applied: the copy stays at the state before
// it, whole, until a good file comes.
func TestFollowProvesBeforeApplying(t *testing.T) {
	p, c, out := setup(t)
	p.insert(5)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 2)
	txid := p.insert(50)
	var mangled bool
	p.write(c, 0, txid, txid, func(pgno uint32, data []byte) {
		if pgno > 2 && !mangled {
			data[pageSize-1] ^= 0xff // the last page changed: after the earlier ones
			mangled = true
		}
	})
	time.Sleep(200 * time.Millisecond) // twenty intervals: the file is tried and refused
	select {
	case s := <-f.applied:
		t.Fatalf("the follower applied TXID %s from a file that does not prove", s.TXID)
	default:
	}
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(2))) {
		t.Fatal("the copy changed though the file did not prove")
	}
	p.write(c, 1, txid, txid, nil) // a good copy of the file at level 1
	f.waitTXID(t, txid)
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(txid))) {
		t.Fatalf("the copy is not the primary's state of TXID %s", txid)
	}
}

// TestFollowAutoVacuum: a primary in auto_vacuum FULL (pages moved and the
// file cut at every commit that frees pages) and one in INCREMENTAL are
// followed exactly: the copy's own SQLite commit moves nothing.
func TestFollowAutoVacuum(t *testing.T) {
	for _, mode := range []string{"FULL", "INCREMENTAL"} {
		t.Run(mode, func(t *testing.T) {
			p := newPrimaryWith(t, "a", "PRAGMA auto_vacuum = "+mode)
			c := file.New(filepath.Join(t.TempDir(), "replica"))
			out := filepath.Join(t.TempDir(), "copy.db")
			p.insert(50)
			p.write(c, storage.SnapshotLevel, 1, 2, nil)
			f := startFollower(t, c, out)
			f.waitTXID(t, 2)
			for i, q := range []string{"DELETE FROM t WHERE id % 3 = 0", "PRAGMA incremental_vacuum(5)", "DELETE FROM t WHERE id > 10", "INSERT INTO t (v) VALUES (hex(randomblob(5000)))"} {
				txid := p.exec(q)
				p.write(c, 0, txid, txid, nil)
				f.waitTXID(t, txid)
				if got := content(t, out); !bytes.Equal(got, normalized(p.state(txid))) {
					t.Fatalf("after %q (%d): the copy is not the primary's state of TXID %s", q, i, txid)
				}
			}
		})
	}
}

// TestFollowCopyReplaced: a follower whose copy is replaced under it (a
// restore -force to its path) stops rather than write to a file no reader
// opens.
func TestFollowCopyReplaced(t *testing.T) {
	p, c, out := setup(t)
	p.insert(5)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 2)
	other := filepath.Join(filepath.Dir(out), "other.db")
	if err := os.WriteFile(other, p.state(2), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, out); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-f.done:
		f.cancel = nil
		if err == nil || !strings.Contains(err.Error(), "was replaced") {
			t.Fatalf("the follower of a replaced copy returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follower of a replaced copy goes on")
	}
}

// hotJournalOf returns the hot journal a follower killed in the middle of
// a commit to the copy at out leaves: a real one, captured from an open
// SQLite write transaction on the copy (rolled back afterwards).
func hotJournalOf(t *testing.T, out string) []byte {
	t.Helper()
	_, journal, err := testutil.HotJournal(context.Background(), out, "t")
	if err != nil {
		t.Fatal(err)
	}
	return journal
}

// runUntil runs a follower until it stops or reaches txid: the error it
// stopped with, or nil once the copy holds txid.
func runUntil(t *testing.T, c storage.Client, out string, txid ltx.TXID) error {
	t.Helper()
	f := startFollower(t, c, out)
	select {
	case err := <-f.done:
		f.cancel = nil
		if err == nil {
			t.Fatal("the follower stopped without an error")
		}
		return err
	case <-time.After(10 * time.Second):
		f.waitTXID(t, txid) // fails the test
	case s := <-f.applied:
		if s.TXID != txid {
			f.waitTXID(t, txid)
		}
	}
	f.stop(t)
	return nil
}

// TestFollowStaleHotJournal: a follower killed in the middle of a commit
// leaves the copy's hot journal; the copy and its record deleted, a new
// follower never rolls that journal into the copy it restores (SQLite
// would write the old copy's pages into it at its first open): it refuses
// and names the journal, which it leaves as it is; once it is deleted, the
// copy is restored, the primary's state exactly.
func TestFollowStaleHotJournal(t *testing.T) {
	p, c, out := setup(t)
	p.insert(40)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 2)
	f.stop(t)
	journal := hotJournalOf(t, out)
	for _, name := range []string{out, filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".follow")} {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(out+"-journal", journal, 0o644); err != nil {
		t.Fatal(err)
	}
	txid := p.exec("UPDATE t SET v = 'changed ' || v")
	p.write(c, 0, 3, txid, nil)

	err := runUntil(t, c, out, txid)
	if err == nil {
		t.Fatalf("the follower restored a copy beside a stale hot journal; the copy is the primary's state: %v", bytes.Equal(content(t, out), normalized(p.state(txid))))
	}
	if !strings.Contains(err.Error(), out+"-journal") {
		t.Fatalf("the refusal does not name the journal: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused follower left a copy: %v", err)
	}
	if b, err := os.ReadFile(out + "-journal"); err != nil || !bytes.Equal(b, journal) {
		t.Fatalf("the refused follower changed the journal (%v)", err)
	}
	if err := os.Remove(out + "-journal"); err != nil {
		t.Fatal(err)
	}
	if err := runUntil(t, c, out, txid); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(content(t, out), normalized(p.state(txid))) {
		t.Fatalf("the copy is not the primary's state of TXID %s", txid)
	}
}

// TestFollowProvedInPlace: a hot journal that appears beside the output
// just before the first restore links the copy there is rolled into the
// copy by SQLite at its first open; the follower reads the copy again in
// place, finds it is not the state it restored, removes it (no reader is
// left with it) and stops; the next follower restores it whole.
func TestFollowProvedInPlace(t *testing.T) {
	p, c, out := setup(t)
	p.insert(40)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 2)
	f.stop(t)
	journal := hotJournalOf(t, out)
	for _, name := range []string{out, filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".follow")} {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	txid := p.exec("UPDATE t SET v = 'changed ' || v")
	p.write(c, 0, 3, txid, nil)

	follow.SetBeforeLink(func(out string) {
		if err := os.WriteFile(out+"-journal", journal, 0o644); err != nil {
			t.Error(err)
		}
	})
	err := runUntil(t, c, out, txid)
	follow.SetBeforeLink(nil)
	if err == nil {
		t.Fatalf("the follower went on with a copy SQLite changed at its first open; the copy is the primary's state: %v", bytes.Equal(content(t, out), normalized(p.state(txid))))
	}
	if !strings.Contains(err.Error(), "once in place") {
		t.Fatalf("the follower stopped otherwise: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the changed copy is left at %s: %v", out, err)
	}
	if err := runUntil(t, c, out, txid); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(content(t, out), normalized(p.state(txid))) {
		t.Fatalf("the copy is not the primary's state of TXID %s", txid)
	}
}

// TestFollowYieldsToReaders: a reader that holds a read transaction on the
// copy longer than the follower waits to commit makes the follower give
// up and back off, never starve the copy's other readers: while its
// commit waits, SQLite's PENDING lock keeps new readers out, and a reader
// with a busy timeout of 3 s (shorter than the README's 5 s) always gets
// through. Once the long reader is done, the file is applied.
func TestFollowYieldsToReaders(t *testing.T) {
	p, c, out := setup(t)
	p.insert(5)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 2)

	open := func() *sql.DB {
		db, err := sql.Open("sqlite", "file:"+out+"?mode=ro&_pragma=busy_timeout(3000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	long, err := open().Begin()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := long.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	txid := p.insert(7)
	p.write(c, 0, txid, txid, nil)

	// Other readers read the copy while the long one holds it for longer
	// than their busy timeout.
	reader := open()
	held := time.Now()
	for time.Since(held) < 3500*time.Millisecond {
		if err := reader.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatalf("a reader of the copy failed after %s while another held a read transaction: %v", time.Since(held).Round(time.Millisecond), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := long.Rollback(); err != nil {
		t.Fatal(err)
	}
	f.waitTXID(t, txid)
	if got := content(t, out); !bytes.Equal(got, normalized(p.state(txid))) {
		t.Fatalf("the copy is not the primary's state of TXID %s", txid)
	}
}

// unlistable fails every listing while down is set: a replica out of reach.
type unlistable struct {
	storage.Client
	down atomic.Bool
}

func (c *unlistable) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	if c.down.Load() {
		return nil, errors.New("connection refused (test)")
	}
	return c.Client.LTXFiles(ctx, level)
}

// TestFollowReportsEachStep: Stepped is told after every listing whether
// the copy holds the replica's newest TXID, or what kept it from it: what
// a standby's health check reads.
func TestFollowReportsEachStep(t *testing.T) {
	p, dir, out := setup(t)
	p.insert(5)
	p.write(dir, storage.SnapshotLevel, 1, 2, nil)
	c := &unlistable{Client: dir}
	type step struct {
		s   follow.Status
		err error
	}
	steps := make(chan step, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- follow.Run(ctx, c, out, follow.Options{
			Interval: 10 * time.Millisecond,
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			Stepped:  func(s follow.Status, err error) { steps <- step{s, err} },
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the follower failed: %v", err)
		}
	}()
	await := func(ok func(step) bool) step {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case s := <-steps:
				if ok(s) {
					return s
				}
			case <-deadline:
				t.Fatal("the follower never reported the step awaited")
			}
		}
	}
	await(func(s step) bool { return s.err == nil && s.s.TXID == 2 && s.s.Newest == 2 })
	c.down.Store(true)
	txid := p.insert(20)
	p.write(dir, 0, txid, txid, nil)
	if s := await(func(s step) bool { return s.err != nil }); !strings.Contains(s.err.Error(), "connection refused") || s.s.TXID != 2 {
		t.Fatalf("a failed listing reported as %+v, %v; want its error, and the copy at TXID 2", s.s, s.err)
	}
	c.down.Store(false)
	await(func(s step) bool { return s.err == nil && s.s.TXID == txid && s.s.Newest == txid })
}

// TestFollowPromote: a standby's copy promoted is the replica's state byte
// for byte (WAL mode, the state's own change counter and version numbers),
// so that replication goes on from it without a full copy; and it is a
// follower's copy no more.
func TestFollowPromote(t *testing.T) {
	p, c, out := setup(t)
	p.insert(5)
	p.write(c, storage.SnapshotLevel, 1, 2, nil)
	f := startFollower(t, c, out)
	f.waitTXID(t, 2)
	txid := p.insert(30)
	p.write(c, 0, txid, txid, nil)
	f.waitTXID(t, txid)
	f.stop(t)
	if got, _ := os.ReadFile(out); bytes.Equal(got, p.state(txid)) {
		t.Fatal("the copy before the promotion is already the state byte for byte: the test proves nothing")
	}
	promoteExact(t, out, p.state(txid), txid)
	if err := testutil.IntegrityCheck(context.Background(), out); err != nil {
		t.Fatalf("the promoted copy: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(out), ".copy.db.follow")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the follower's record is still there after the promotion: %v", err)
	}
}
