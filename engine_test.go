package walship_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
	"github.com/walship/walship/verify"
)

// harness is one application database replicated to a directory, with the
// oracle's record of the database image at every TXID the engine produced.
type harness struct {
	t       *testing.T
	ctx     context.Context
	dir     string
	path    string
	app     *sql.DB
	replica *file.Client
	db      *walship.DB
	images  map[ltx.TXID]testutil.Image
}

func quietLogger() *slog.Logger {
	if os.Getenv("WALSHIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openApp(t *testing.T, path string, pragmas ...string) *sql.DB {
	t.Helper()
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)"
	for _, p := range pragmas {
		dsn += "&_pragma=" + p
	}
	dsn += "&_pragma=journal_mode(wal)&_pragma=synchronous(normal)"
	app, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	app.SetMaxOpenConns(1)
	t.Cleanup(func() { app.Close() })
	return app
}

func newHarness(t *testing.T, pragmas ...string) *harness {
	t.Helper()
	return newHarnessAt(t, filepath.Join(t.TempDir(), "app.db"), pragmas...)
}

// newHarnessAt is newHarness with the database at path, which must not
// exist.
func newHarnessAt(t *testing.T, path string, pragmas ...string) *harness {
	t.Helper()
	dir := filepath.Dir(path)
	h := &harness{t: t, ctx: context.Background(), dir: dir, path: path,
		replica: file.New(filepath.Join(dir, "replica")), images: map[ltx.TXID]testutil.Image{}}
	// Settings that fix the file's layout must precede WAL mode.
	init, err := sql.Open("sqlite", "file:"+h.path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pragmas {
		if _, err := init.Exec("PRAGMA " + strings.Replace(strings.TrimSuffix(p, ")"), "(", "=", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := init.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB, n INTEGER)"); err != nil {
		t.Fatal(err)
	}
	init.Close()
	h.app = openApp(t, h.path)
	return h
}

func (h *harness) exec(q string, args ...any) {
	h.t.Helper()
	if _, err := h.app.ExecContext(h.ctx, q, args...); err != nil {
		h.t.Fatalf("%s: %v", q, err)
	}
}

func (h *harness) open(opts walship.Options) {
	h.t.Helper()
	opts.Logger = quietLogger()
	db, err := walship.NewDB(h.path, opts, walship.NewReplica("dir", h.replica))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := db.Open(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	h.db = db
	h.t.Cleanup(func() { db.Close(context.Background()) })
	h.sync()
}

// sync captures what the application committed, ships it, and records the
// oracle's image of the database at the new TXID.
func (h *harness) sync() ltx.TXID {
	h.t.Helper()
	if _, err := h.db.Sync(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	return h.record()
}

func (h *harness) record() ltx.TXID {
	h.t.Helper()
	if err := walship.Upload(h.ctx, h.db); err != nil {
		h.t.Fatal(err)
	}
	pos := h.db.Pos()
	img, err := testutil.LogicalImage(h.ctx, h.path)
	if err != nil {
		h.t.Fatal(err)
	}
	if prev, ok := h.images[pos.TXID]; ok && prev != img {
		h.t.Fatalf("TXID %s: database changed (%d pages) but no new TXID was produced", pos.TXID, img.Pages)
	}
	h.images[pos.TXID] = img
	return pos.TXID
}

// verifyAll restores every recorded TXID and compares it page for page.
func (h *harness) verifyAll() {
	h.t.Helper()
	h.verifyAllWith("full")
}

func (h *harness) verifyAllWith(integrity string) {
	h.t.Helper()
	if len(h.images) < 2 {
		h.t.Fatalf("only %d TXIDs recorded", len(h.images))
	}
	h.verifyReplica()
	for txid, want := range h.images {
		out := filepath.Join(h.t.TempDir(), fmt.Sprintf("restored-%s.db", txid))
		res, err := restore.Restore(h.ctx, h.replica, out, restore.Options{Target: restore.Target{TXID: txid}, IntegrityCheck: integrity})
		if err != nil {
			h.t.Fatalf("restore TXID %s: %v", txid, err)
		}
		got, err := testutil.FileImage(out, int(res.PageSize))
		if err != nil {
			h.t.Fatal(err)
		}
		if got != want {
			h.t.Fatalf("TXID %s: restored %d pages %s, database had %d pages %s", txid, got.Pages, got.Hash[:12], want.Pages, want.Hash[:12])
		}
		os.Remove(out)
	}
}

// verifyReplica checks that walship verify finds the replica whole.
func (h *harness) verifyReplica() {
	h.t.Helper()
	rep, err := verify.Replica(h.ctx, h.replica, verify.Options{})
	if err != nil {
		h.t.Fatalf("verify: %v", err)
	}
	for _, p := range rep.Problems {
		h.t.Errorf("verify: %s %s: %s", p.Kind, p.Object, p.Message)
	}
	if !rep.Whole() {
		h.t.FailNow()
	}
}

// verifyChain checks that the replica's level-0 files form one contiguous
// chain from TXID 1 whose checksums link, and that every restore point (the
// end of each file) restores to a database that passes SQLite's integrity
// check.
func (h *harness) verifyChain() {
	h.t.Helper()
	for _, txid := range checkChain(h.t, h.ctx, h.replica) {
		out := filepath.Join(h.t.TempDir(), "chain.db")
		if _, err := restore.Restore(h.ctx, h.replica, out, restore.Options{Target: restore.Target{TXID: txid}, IntegrityCheck: "full"}); err != nil {
			h.t.Fatalf("restore TXID %s: %v", txid, err)
		}
		os.Remove(out)
	}
}

// checkChain asserts the level-0 files of c hold TXIDs first..N exactly once,
// in files of one TXID or, where a replica that fell behind received its
// backlog merged, of several, each file's pre-apply checksum equal to the
// previous file's post-apply checksum, where first follows a snapshot
// (retention removes the level-0 files a snapshot stands for) or is 1. It
// returns the end TXID of each file: the replica's restore points.
func checkChain(t *testing.T, ctx context.Context, c storage.Client) []ltx.TXID {
	t.Helper()
	files, err := c.LTXFiles(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("the replica has no level-0 files")
	}
	first := files[0].MinTXID
	if first != 1 {
		snaps, err := c.LTXFiles(ctx, storage.SnapshotLevel)
		if err != nil {
			t.Fatal(err)
		}
		if len(snaps) == 0 || snaps[0].MaxTXID+1 < first {
			t.Fatalf("level 0 starts at TXID %s with no snapshot before it", first)
		}
	}
	var prev ltx.Pos
	var points []ltx.TXID
	for i, f := range files {
		if (i > 0 && f.MinTXID != prev.TXID+1) || f.MaxTXID < f.MinTXID {
			t.Fatalf("level 0 file %d is %s-%s after TXID %s: the chain has a gap or a repeated TXID", i, f.MinTXID, f.MaxTXID, prev.TXID)
		}
		hdr, trailer, err := storage.ReadHeaderTrailer(ctx, c, f)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && hdr.PreApplyChecksum != prev.PostApplyChecksum {
			t.Fatalf("TXID %s: pre-apply checksum %s, previous post-apply %s", f.MinTXID, hdr.PreApplyChecksum, prev.PostApplyChecksum)
		}
		prev = ltx.NewPos(f.MaxTXID, trailer.PostApplyChecksum)
		points = append(points, f.MaxTXID)
	}
	return points
}

func (h *harness) randomWrites(rng *rand.Rand, n int) {
	for range n {
		switch rng.IntN(4) {
		case 0, 1:
			h.exec("INSERT INTO t (v, n) VALUES (?, ?)", randBytes(rng, rng.IntN(3000)), rng.Int64())
		case 2:
			h.exec("UPDATE t SET v = ?, n = n + 1 WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 3)", randBytes(rng, rng.IntN(2000)))
		case 3:
			h.exec("DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 2)")
		}
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestRandomWorkload(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	for range 30 {
		h.randomWrites(rng, 1+rng.IntN(20))
		h.sync()
	}
	h.verifyAll()
}

func randFor(t *testing.T) *rand.Rand {
	seed := uint64(0)
	for _, c := range t.Name() {
		seed = seed*31 + uint64(c)
	}
	return rand.New(rand.NewPCG(seed, 99))
}
