package walship_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage/file"
)

// Compaction verifies its inputs. A staged history broken by a corrupt,
// missing or overlapping file (issue 12: it failed at every interval, and
// staged files piled up) is merged up to the break and on past it, the
// engine takes a snapshot after it, and the replica restores its latest
// state exactly again, and every state after.
func TestCompactionHealsBrokenHistory(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, staged *file.Client)
	}{
		{"flipped byte", func(t *testing.T, staged *file.Client) {
			p := staged.LTXFilePath(0, 3, 3)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x40
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"dropped file", func(t *testing.T, staged *file.Client) {
			if err := os.Remove(staged.LTXFilePath(0, 3, 3)); err != nil {
				t.Fatal(err)
			}
		}},
		{"overlapping range", func(t *testing.T, staged *file.Client) {
			// A second file for TXIDs 3-4, made by compacting the real ones.
			var rdrs []io.Reader
			for _, txid := range []ltx.TXID{3, 4} {
				f, err := os.Open(staged.LTXFilePath(0, txid, txid))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				rdrs = append(rdrs, f)
			}
			out, err := os.Create(staged.LTXFilePath(0, 3, 4))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			c, err := ltx.NewCompactor(out, rdrs)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Compact(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.open(walship.Options{Levels: []time.Duration{time.Hour}})
			rng := randFor(t)
			for range 5 {
				h.randomWrites(rng, 3)
				h.sync()
			}
			staged := file.New(walship.MetaPath(h.path))
			c.damage(t, staged)
			for range 3 {
				if _, err := h.db.Compact(h.ctx, 1); err != nil {
					t.Fatalf("compaction of a broken history: %v", err)
				}
			}
			if files := mustList(t, staged, 1); len(files) == 0 {
				t.Fatal("compaction merged nothing past the break")
			}
			if err := walship.Upload(h.ctx, h.db); err != nil {
				t.Fatal(err)
			}
			restoreTXID(t, h.replica, 6, h.images[6])
			// And from then on, as if nothing happened.
			for range 3 {
				h.randomWrites(rng, 3)
				h.sync()
			}
			if _, err := h.db.Compact(h.ctx, 1); err != nil {
				t.Fatal(err)
			}
			if err := walship.Upload(h.ctx, h.db); err != nil {
				t.Fatal(err)
			}
			latest := h.db.Pos().TXID
			for txid := ltx.TXID(7); txid <= latest; txid++ {
				restoreTXID(t, h.replica, txid, h.images[txid])
			}
			if files := mustList(t, staged, 0); len(files) > 4 {
				t.Errorf("%d level-0 files stay staged after compaction and upload", len(files))
			}
		})
	}
	t.Run("intact", func(t *testing.T) {
		h := newHarness(t)
		h.open(walship.Options{Levels: []time.Duration{time.Hour}})
		rng := randFor(t)
		for range 5 {
			h.randomWrites(rng, 3)
			h.sync()
		}
		info, err := h.db.Compact(h.ctx, 1)
		// TXID 1, the first snapshot, is at level 9 already: level 1
		// starts after it.
		if err != nil || info == nil || info.MinTXID != 2 || info.MaxTXID != 6 {
			t.Fatalf("compaction: %+v, %v; want one file for TXIDs 2-6", info, err)
		}
		if info, err := h.db.Compact(h.ctx, 1); info != nil || err != nil {
			t.Fatalf("a second compaction with nothing new wrote %+v, %v", info, err)
		}
		if err := walship.Upload(h.ctx, h.db); err != nil {
			t.Fatal(err)
		}
		if files, _ := h.replica.LTXFiles(h.ctx, 1); len(files) != 1 {
			t.Fatalf("the replica has %d level-1 files", len(files))
		}
		// Restores read the compacted file now that level 0 is gone.
		for _, f := range mustList(t, h.replica, 0) {
			if f.MaxTXID < 6 {
				os.Remove(filepath.Join(h.replica.Dir(), "ltx", "0", ltx.FormatFilename(f.MinTXID, f.MaxTXID)))
			}
		}
		for txid, img := range h.images {
			if txid == 1 || txid == 6 {
				restoreTXID(t, h.replica, txid, img)
			}
		}
	})
}

func mustList(t *testing.T, c *file.Client, level int) []*ltx.FileInfo {
	t.Helper()
	files, err := c.LTXFiles(context.Background(), level)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// restoreTXID restores txid and compares it with the image the oracle took.
func restoreTXID(t *testing.T, c *file.Client, txid ltx.TXID, want testutil.Image) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "r.db")
	res, err := restore.Restore(context.Background(), c, out, restore.Options{Target: restore.Target{TXID: txid}, IntegrityCheck: "full"})
	if err != nil {
		t.Fatalf("restore TXID %s: %v", txid, err)
	}
	got, err := testutil.FileImage(out, int(res.PageSize))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("TXID %s restored %d pages %s; the database had %d pages %s", txid, got.Pages, got.Hash[:12], want.Pages, want.Hash[:12])
	}
}

// The replica stays unreachable while the application writes more than
// max-local-bytes: staging stays under the cap, and once the replica is back
// the history continues from a new snapshot; no restore in between can be
// wrong — each TXID either restores exactly or fails.
func TestReplicaAwayPastMaxLocalBytes(t *testing.T) {
	const limit = 256 << 10
	h := newHarness(t)
	h.open(walship.Options{MaxLocalBytes: limit})
	rng := randFor(t)
	dir := h.replica.Dir()
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(dir, nil, 0o644) // in the way: every upload fails
	staged := file.New(walship.MetaPath(h.path))
	dropped := false
	for i := range 40 {
		for range 10 {
			h.exec("INSERT INTO t (v) VALUES (?)", randBytes(rng, 3000))
		}
		if _, err := h.db.Sync(h.ctx); err != nil {
			t.Fatal(err)
		}
		if err := walship.Upload(h.ctx, h.db); err == nil {
			t.Fatal("upload to a missing replica succeeded")
		}
		var total int64
		for level := 0; level <= 9; level++ {
			for _, f := range mustList(t, staged, level) {
				total += f.Size
			}
		}
		if total > limit+64<<10 {
			t.Fatalf("sync %d: staging holds %d bytes; the cap is %d", i, total, limit)
		}
		dropped = dropped || h.db.Pos().TXID > 3 && len(mustList(t, staged, 0)) < int(h.db.Pos().TXID)-1
	}
	if !dropped {
		t.Fatal("the staged history was never dropped")
	}
	os.Remove(dir)
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	h.exec("INSERT INTO t (v) VALUES (1)")
	h.sync() // uploads: the replica gets a snapshot, then the new files
	restoreLatestMatches(t, h.replica, h.path)
	for txid := ltx.TXID(1); txid <= h.db.Pos().TXID; txid++ {
		out := filepath.Join(t.TempDir(), "r.db")
		res, err := restore.Restore(h.ctx, h.replica, out, restore.Options{Target: restore.Target{TXID: txid}})
		if err != nil {
			continue // a dropped restore point: refused, not wrong
		}
		if want, ok := h.images[txid]; ok {
			got, _ := testutil.FileImage(out, int(res.PageSize))
			if got != want {
				t.Fatalf("TXID %s restored a wrong database", txid)
			}
		}
	}
}
