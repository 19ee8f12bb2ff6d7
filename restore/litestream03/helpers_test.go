package litestream03

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"
	_ "modernc.org/sqlite"

	"github.com/walship/walship/internal/wal"
	"github.com/walship/walship/storage/file"
)

// The tests build Litestream v0.3 replicas by hand, in a directory, from
// databases SQLite wrote: a snapshot is a database file, and each WAL index
// holds frames of the pages that the next states change, laid out and
// checksummed as SQLite lays them out. Every state is known, so a restore
// is compared byte for byte.

// app is a database that the tests change step by step.
type app struct {
	t    *testing.T
	path string
	db   *sql.DB
	rng  *rand.Rand
	id   int
}

func newApp(t *testing.T, pageSize int) *app {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite", "file:"+path+fmt.Sprintf("?_pragma=page_size(%d)&_pragma=journal_mode(delete)", pageSize))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	return &app{t: t, path: path, db: db, rng: rand.New(rand.NewPCG(uint64(pageSize), 7))}
}

// step commits a transaction of n inserts (and an update and a delete
// when there are rows) and returns the database file after it.
func (a *app) step(n int) []byte {
	a.t.Helper()
	tx, err := a.db.Begin()
	if err != nil {
		a.t.Fatal(err)
	}
	for range n {
		a.id++
		v := make([]byte, 200+a.rng.IntN(1500))
		for i := range v {
			v[i] = byte(a.rng.Uint32())
		}
		if _, err := tx.Exec("INSERT INTO t (id, v) VALUES (?, ?)", a.id, v); err != nil {
			a.t.Fatal(err)
		}
	}
	if a.id > 4 {
		if _, err := tx.Exec("UPDATE t SET v = randomblob(300) WHERE id = ?", 1+a.rng.IntN(a.id-1)); err != nil {
			a.t.Fatal(err)
		}
		if _, err := tx.Exec("DELETE FROM t WHERE id = ?", 1+a.rng.IntN(a.id-1)); err != nil {
			a.t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		a.t.Fatal(err)
	}
	return a.file()
}

// vacuum shrinks the database and returns it.
func (a *app) vacuum() []byte {
	a.t.Helper()
	if _, err := a.db.Exec("DELETE FROM t WHERE id % 3 = 0"); err != nil {
		a.t.Fatal(err)
	}
	if _, err := a.db.Exec("VACUUM"); err != nil {
		a.t.Fatal(err)
	}
	return a.file()
}

func (a *app) file() []byte {
	a.t.Helper()
	b, err := os.ReadFile(a.path)
	if err != nil {
		a.t.Fatal(err)
	}
	return b
}

// walIndex builds the bytes of one WAL index: a header, then for each
// commit the frames of the pages that differ from the state before.
type walIndex struct {
	pageSize  int
	bigEndian bool
	salt1     uint32
	salt2     uint32
	b         bytes.Buffer
	s1, s2    uint32
	cur       []byte // the state the frames so far lead to
	commits   []int64
}

func newWALIndex(pageSize int, salt uint32, from []byte) *walIndex {
	w := &walIndex{pageSize: pageSize, bigEndian: salt%2 == 0, salt1: salt, salt2: ^salt, cur: bytes.Clone(from)}
	h := make([]byte, wal.HeaderSize)
	magic := uint32(0x377f0682)
	if w.bigEndian {
		magic = 0x377f0683
	}
	binary.BigEndian.PutUint32(h[0:], magic)
	binary.BigEndian.PutUint32(h[4:], 3007000)
	binary.BigEndian.PutUint32(h[8:], uint32(pageSize))
	binary.BigEndian.PutUint32(h[16:], w.salt1)
	binary.BigEndian.PutUint32(h[20:], w.salt2)
	w.s1, w.s2 = wal.Checksum(w.bigEndian, 0, 0, h[:24])
	binary.BigEndian.PutUint32(h[24:], w.s1)
	binary.BigEndian.PutUint32(h[28:], w.s2)
	w.b.Write(h)
	return w
}

// commit appends the frames that take the database from w.cur to next,
// page 1 last (as the commit frame), and returns the offset after them.
func (w *walIndex) commit(next []byte) int64 {
	ps := w.pageSize
	n := len(next) / ps
	var pgnos []int
	for p := 2; p <= n; p++ {
		off := (p - 1) * ps
		if off+ps > len(w.cur) || !bytes.Equal(w.cur[off:off+ps], next[off:off+ps]) {
			pgnos = append(pgnos, p)
		}
	}
	pgnos = append(pgnos, 1)
	for i, p := range pgnos {
		commit := uint32(0)
		if i == len(pgnos)-1 {
			commit = uint32(n)
		}
		w.frame(uint32(p), commit, next[(p-1)*ps:p*ps])
	}
	w.cur = bytes.Clone(next)
	w.commits = append(w.commits, int64(w.b.Len()))
	return int64(w.b.Len())
}

// frame appends one frame, checksummed.
func (w *walIndex) frame(pgno, commit uint32, data []byte) {
	h := make([]byte, wal.FrameHeaderSize)
	binary.BigEndian.PutUint32(h[0:], pgno)
	binary.BigEndian.PutUint32(h[4:], commit)
	binary.BigEndian.PutUint32(h[8:], w.salt1)
	binary.BigEndian.PutUint32(h[12:], w.salt2)
	w.s1, w.s2 = wal.Checksum(w.bigEndian, w.s1, w.s2, h[:8])
	w.s1, w.s2 = wal.Checksum(w.bigEndian, w.s1, w.s2, data)
	binary.BigEndian.PutUint32(h[16:], w.s1)
	binary.BigEndian.PutUint32(h[20:], w.s2)
	w.b.Write(h)
	w.b.Write(data)
}

// replica is a Litestream v0.3 replica in a directory.
type replica struct {
	t      *testing.T
	client *file.Client
}

func newReplica(t *testing.T) *replica {
	return &replica{t: t, client: file.New(t.TempDir())}
}

// put writes data, LZ4-compressed as Litestream v0.3 compresses it, as the
// object name, written at at.
func (r *replica) put(name string, data []byte, at time.Time) {
	r.t.Helper()
	r.putRaw(name, compress(r.t, data), at)
}

// putRaw writes b as the object name as it is.
func (r *replica) putRaw(name string, b []byte, at time.Time) {
	r.t.Helper()
	p := filepath.Join(r.client.Dir(), filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Chtimes(p, at, at); err != nil {
		r.t.Fatal(err)
	}
}

func (r *replica) remove(name string) {
	r.t.Helper()
	if err := os.Remove(filepath.Join(r.client.Dir(), filepath.FromSlash(name))); err != nil {
		r.t.Fatal(err)
	}
}

func (r *replica) read(name string) []byte {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.client.Dir(), filepath.FromSlash(name)))
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func compress(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := lz4.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func decompressAll(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if _, err := out.ReadFrom(lz4.NewReader(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// segments writes the WAL index w as segments of index, cut at the given
// offsets (frame boundaries, any of them), each written a second after the
// one before, from at on. It returns the time of each segment.
func (r *replica) segments(gen string, index int, w *walIndex, cuts []int64, at time.Time) []time.Time {
	r.t.Helper()
	all := w.b.Bytes()
	bounds := append(append([]int64{0}, cuts...), int64(len(all)))
	var times []time.Time
	for i := 0; i+1 < len(bounds); i++ {
		t := at.Add(time.Duration(i) * time.Second)
		r.put(SegmentName(gen, index, bounds[i]), all[bounds[i]:bounds[i+1]], t)
		times = append(times, t)
	}
	return times
}

// restoreTo restores b to target into a new file and returns its bytes.
func restoreTo(t *testing.T, r *replica, target time.Time) ([]byte, *Result, error) {
	t.Helper()
	b, err := Find(context.Background(), r.client)
	if err != nil {
		t.Fatal(err)
	}
	if b == nil {
		t.Fatal("Find found no backup")
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "out.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	scratch := func() (*os.File, error) { return os.CreateTemp(dir, "wal-*") }
	res, err := b.Restore(context.Background(), r.client, target, f, scratch)
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("the restore left %d files in its directory; want only the output", len(entries))
	}
	if err != nil {
		return nil, nil, err
	}
	out, rerr := os.ReadFile(f.Name())
	if rerr != nil {
		t.Fatal(rerr)
	}
	return out, res, nil
}
