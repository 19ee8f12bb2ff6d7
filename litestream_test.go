package walship_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/owner"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
	"github.com/walship/walship/verify"
)

// asLitestream rewrites every file of the replica c as Litestream 0.5
// writes it, without database checksums (ltx.HeaderFlagNoChecksum), and
// removes walship's owner record: the replica as Litestream leaves it. The
// TXIDs, pages and timestamps stay.
func asLitestream(t *testing.T, c *file.Client) {
	t.Helper()
	ctx := context.Background()
	for level := 0; level <= storage.MaxLevel; level++ {
		files, err := c.LTXFiles(ctx, level)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			rc, err := c.OpenLTXFile(ctx, level, f.MinTXID, f.MaxTXID, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			hdr, err := storage.ToLitestream(&b, rc, 0, "")
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.WriteLTXFile(ctx, level, f.MinTXID, f.MaxTXID, &b, f.CreatedAt); err != nil {
				t.Fatal(err)
			}
			if !hdr.NoChecksum() || hdr.NodeID != 0 {
				t.Fatalf("%s is not in Litestream's form", storage.Describe(level, f.MinTXID, f.MaxTXID))
			}
		}
	}
	if err := os.Remove(filepath.Join(c.Dir(), owner.RecordName)); err != nil {
		t.Fatal(err)
	}
}

// header reads the header and trailer of one file of the replica.
func header(t *testing.T, c storage.Client, level int, minTXID, maxTXID ltx.TXID) (ltx.Header, ltx.Trailer) {
	t.Helper()
	hdr, trailer, err := storage.ReadHeaderTrailer(context.Background(), c, &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: fileSize(t, c, level, minTXID, maxTXID)})
	if err != nil {
		t.Fatal(err)
	}
	return hdr, trailer
}

func fileSize(t *testing.T, c storage.Client, level int, minTXID, maxTXID ltx.TXID) int64 {
	t.Helper()
	rc, err := c.OpenLTXFile(context.Background(), level, minTXID, maxTXID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestContinueLitestreamReplica: walship starts on a database whose
// replica Litestream wrote (its files carry no database checksums, there
// is no owner record and no staging directory), without being asked to.
// It goes on from Litestream's newest TXID with a delta whose pre-apply
// checksum is the state Litestream's files end with, read from them; every
// TXID restores exactly, Litestream's and walship's, and verify finds the
// replica whole. Whether the WAL still shows the commits made since
// Litestream stopped or the application truncated it meanwhile.
func TestContinueLitestreamReplica(t *testing.T) {
	for _, truncated := range []bool{false, true} {
		t.Run(map[bool]string{false: "wal", true: "truncated"}[truncated], func(t *testing.T) {
			h := newHarness(t)
			h.open(walship.Options{})
			rng := randFor(t)
			for i := range 8 {
				h.randomWrites(rng, 1+rng.IntN(10))
				h.sync()
				if i == 4 {
					if _, err := h.db.Compact(h.ctx, 1); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := walship.Upload(h.ctx, h.db); err != nil {
				t.Fatal(err)
			}
			last := h.db.Pos().TXID
			if err := h.db.Close(h.ctx); err != nil {
				t.Fatal(err)
			}
			asLitestream(t, h.replica)
			if err := os.RemoveAll(walship.MetaPath(h.path)); err != nil {
				t.Fatal(err)
			}

			// The application writes while no replicator runs.
			h.randomWrites(rng, 5)
			if truncated {
				h.exec("PRAGMA wal_checkpoint(TRUNCATE)")
			}
			if err := h.tryOpen(walship.Options{}); err != nil {
				t.Fatalf("walship on Litestream's replica: %v", err)
			}
			first := h.sync()
			for range 4 {
				h.randomWrites(rng, 1+rng.IntN(10))
				h.sync()
			}
			if err := walship.Upload(h.ctx, h.db); err != nil {
				t.Fatal(err)
			}

			if first != last+1 {
				t.Fatalf("walship's history starts at TXID %s; Litestream's ended at %s", first, last)
			}
			hdr, _ := header(t, h.replica, 0, first, first)
			st, err := restore.ReadState(h.ctx, h.replica, listReplica(t, h.replica), restore.Target{TXID: last})
			if err != nil {
				t.Fatal(err)
			}
			if hdr.IsSnapshot() || hdr.NoChecksum() || hdr.PreApplyChecksum != st.Checksum {
				t.Fatalf("walship's first file %s: snapshot %v, no checksums %v, pre-apply checksum %s; want a delta from Litestream's state %s",
					storage.Describe(0, first, first), hdr.IsSnapshot(), hdr.NoChecksum(), hdr.PreApplyChecksum, st.Checksum)
			}
			h.verifyAll()
		})
	}
}

// TestContinueLitestreamReplicaUnreadable: when the state Litestream's
// files end with cannot be read (one is damaged and no other file holds
// its TXIDs), walship goes on with a full copy of the database and a
// snapshot, which need no knowledge of the state before them: the latest
// state and every later one restore exactly.
func TestContinueLitestreamReplicaUnreadable(t *testing.T) {
	h := newHarness(t)
	h.open(walship.Options{})
	rng := randFor(t)
	for range 6 {
		h.randomWrites(rng, 1+rng.IntN(10))
		h.sync()
	}
	if err := h.db.Close(h.ctx); err != nil {
		t.Fatal(err)
	}
	asLitestream(t, h.replica)
	os.RemoveAll(walship.MetaPath(h.path))
	// Damage a level-0 file in the middle of Litestream's history.
	f := filepath.Join(h.dir, "replica", "ltx", "0", ltx.FormatFilename(4, 4))
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}

	h.randomWrites(rng, 5)
	if err := h.tryOpen(walship.Options{}); err != nil {
		t.Fatalf("walship on Litestream's replica: %v", err)
	}
	h.images = map[ltx.TXID]testutil.Image{}
	for range 3 {
		h.sync()
		h.randomWrites(rng, 1+rng.IntN(10))
	}
	h.sync()
	for txid, want := range h.images {
		restoreTXID(t, h.replica, txid, want)
	}
}

// TestLitestreamCompatibleReplica: a replica with LitestreamCompatible
// receives every file (level 0, merged uploads, compactions, snapshots)
// without database checksums, as Litestream's restore needs, with the
// state each ends with in its NodeID field; walship restores every TXID of
// it exactly, verify finds it whole, and a restart without the staging
// directory goes on from its newest state with a delta, not a full copy.
func TestLitestreamCompatibleReplica(t *testing.T) {
	h := newHarness(t)
	open := func() {
		t.Helper()
		r := walship.NewReplica("dir", h.replica)
		r.LitestreamCompatible = true
		db, err := walship.NewDB(h.path, walship.Options{Logger: quietLogger()}, r)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Open(h.ctx); err != nil {
			t.Fatal(err)
		}
		h.db = db
		t.Cleanup(func() { db.Close(context.Background()) })
	}
	open()
	h.sync()
	rng := randFor(t)
	for i := range 12 {
		h.randomWrites(rng, 1+rng.IntN(10))
		if i%4 == 3 {
			// A backlog: the upload merges the staged files into one.
			for range 5 {
				h.randomWrites(rng, 2)
				if _, err := h.db.Sync(h.ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		h.sync()
		if i == 6 {
			if _, err := h.db.Compact(h.ctx, 1); err != nil {
				t.Fatal(err)
			}
			if err := h.db.SnapshotIfChanged(h.ctx); err != nil {
				t.Fatal(err)
			}
			h.record()
		}
	}
	for level := 0; level <= storage.MaxLevel; level++ {
		files, err := h.replica.LTXFiles(h.ctx, level)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			hdr, trailer := header(t, h.replica, level, f.MinTXID, f.MaxTXID)
			if !hdr.NoChecksum() || hdr.PreApplyChecksum != 0 || trailer.PostApplyChecksum != 0 || storage.PostApplyChecksum(hdr, trailer) == 0 {
				t.Fatalf("%s: flags %#x, pre-apply %s, post-apply %s, NodeID %#x; want no database checksums and the state in NodeID",
					storage.Describe(level, f.MinTXID, f.MaxTXID), hdr.Flags, hdr.PreApplyChecksum, trailer.PostApplyChecksum, hdr.NodeID)
			}
		}
	}
	h.verifyAll()
	rep, err := verify.Replica(h.ctx, h.replica, verify.Options{})
	if err != nil || !rep.Whole() || rep.Newest == nil || rep.Newest.Checksum != h.db.Pos().PostApplyChecksum {
		t.Fatalf("verify: %v, %+v", err, rep)
	}

	// Restarted without its staging directory, it reads the newest state
	// from the replica's newest file, and goes on with a delta. (A file of
	// one sync says where in the WAL its state was captured; a merged
	// one does not, and then only the database as it is could prove the
	// replica this database's.)
	h.randomWrites(rng, 3)
	h.sync()
	last := h.db.Pos()
	if err := h.db.Close(h.ctx); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(walship.MetaPath(h.path))
	snaps, _ := h.replica.LTXFiles(h.ctx, storage.SnapshotLevel)
	h.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	open()
	next := h.sync()
	hdr, _ := header(t, h.replica, 0, next, next)
	if after, _ := h.replica.LTXFiles(h.ctx, storage.SnapshotLevel); next != last.TXID+1 || hdr.Commit == 0 || len(after) != len(snaps) {
		t.Fatalf("after the restart: TXID %s (was %s), %d snapshots (were %d); want a delta and no snapshot", next, last.TXID, len(after), len(snaps))
	}
	if fileSize(t, h.replica, 0, next, next) > 64<<10 {
		t.Fatalf("after the restart, the first file is a copy of the database")
	}
	h.verifyAll()
}

func listReplica(t *testing.T, c storage.Client) *restore.Listing {
	t.Helper()
	l, err := restore.List(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
