package restore_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// fileForm is who wrote a file of a test replica, and so which checksums
// it carries.
type fileForm int

const (
	walshipForm    fileForm = iota // pre- and post-apply database checksums
	litestreamForm                 // none (ltx.HeaderFlagNoChecksum), as Litestream writes
	compatForm                     // none, and the post-apply checksum in NodeID (litestream-compatible)
)

// writeAs stores the history's file for TXIDs minTXID-maxTXID in the form
// given, with o altering it as for history.write.
func (h *history) writeAs(t testing.TB, c storage.Client, form fileForm, level int, minTXID, maxTXID ltx.TXID, o fileOpts) *ltx.FileInfo {
	t.Helper()
	b := h.encode(t, minTXID, maxTXID, o)
	if form != walshipForm {
		post := h.checksum(maxTXID)
		if o.post != 0 {
			post = o.post
		}
		if form == litestreamForm {
			post = 0
		}
		var out bytes.Buffer
		if _, err := storage.ToLitestream(&out, bytes.NewReader(b), post, ""); err != nil {
			t.Fatal(err)
		}
		b = out.Bytes()
	}
	info, err := c.WriteLTXFile(context.Background(), level, minTXID, maxTXID, bytes.NewReader(b), h.states[maxTXID].at)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// randomHistory returns a history of n transactions that grow, rewrite and
// shrink a database of 512-byte pages.
func randomHistory(rng *rand.Rand, n int) *history {
	h := newHistory(512)
	h.tx(4, 1, 2, 3, 4)
	for h.last() < ltx.TXID(n) {
		commit := h.commit(h.last())
		switch rng.IntN(6) {
		case 0:
			commit += uint32(1 + rng.IntN(6)) // grows; some new pages stay zeros
		case 1:
			commit = max(2, commit-uint32(rng.IntN(3))) // shrinks
		}
		writes := []uint32{1}
		for range rng.IntN(4) {
			writes = append(writes, 1+uint32(rng.IntN(int(commit))))
		}
		h.tx(commit, writes...)
	}
	return h
}

// TestReadState: the state ReadState reads from a replica, whatever wrote its
// files (walship, Litestream, walship for Litestream), is the one a restore
// writes, page for page, at every TXID.
func TestReadState(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(6) {
		rng := rand.New(rand.NewPCG(seed, 1))
		h := randomHistory(rng, 30)
		c := file.New(t.TempDir())
		h.writeAs(t, c, fileForm(seed%3), storage.SnapshotLevel, 1, 5, fileOpts{})
		for txid := ltx.TXID(6); txid <= h.last(); txid++ {
			// Litestream's files first, then walship's: a takeover.
			form := litestreamForm
			switch {
			case txid > 20:
				form = walshipForm
			case txid > 15 && seed%2 == 0:
				form = compatForm
			}
			h.writeAs(t, c, form, 0, txid, txid, fileOpts{})
		}
		h.writeAs(t, c, walshipForm, 1, 21, 25, fileOpts{})
		l, err := restore.List(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		for txid := ltx.TXID(5); txid <= h.last(); txid++ {
			st, err := restore.ReadState(ctx, c, l, restore.Target{TXID: txid})
			if err != nil {
				t.Fatalf("seed %d: read the state at TXID %s: %v", seed, txid, err)
			}
			if st.TXID != txid || st.PageSize != h.pageSize || st.Checksum != h.checksum(txid) {
				t.Fatalf("seed %d TXID %s: state %s, %d-byte pages, checksum %s; want checksum %s", seed, txid, st.TXID, st.PageSize, st.Checksum, h.checksum(txid))
			}
			if len(st.Sums) != int(h.commit(txid)) {
				t.Fatalf("seed %d TXID %s: %d page checksums for %d pages", seed, txid, len(st.Sums), h.commit(txid))
			}
			for i, p := range h.states[txid].pages {
				if want := ltx.ChecksumPage(uint32(i+1), p); st.Sums[i] != want {
					t.Fatalf("seed %d TXID %s: page %d checksum %s, want %s", seed, txid, i+1, st.Sums[i], want)
				}
			}
			out := filepath.Join(t.TempDir(), "out.db")
			res, err := restore.Restore(ctx, c, out, restore.Options{Target: restore.Target{TXID: txid}, IntegrityCheck: "none"})
			if err != nil {
				t.Fatalf("seed %d: restore TXID %s: %v", seed, txid, err)
			}
			if res.Checksum != st.Checksum {
				t.Fatalf("seed %d TXID %s: the restore ends at checksum %s, ReadState at %s", seed, txid, res.Checksum, st.Checksum)
			}
		}
	}
}

// TestChecksumsAfterLitestreamFiles: a chain that goes on with checksums
// after files without them (walship's after Litestream's) is checked again
// from the first file that has them: a file whose pre-apply checksum is not
// the restored state, or a walship file for Litestream whose NodeID holds
// the wrong state, fails the restore, as ReadState.
func TestChecksumsAfterLitestreamFiles(t *testing.T) {
	ctx := context.Background()
	h := newHistory(512)
	h.tx(3, 1, 2, 3)
	for txid := ltx.TXID(2); txid <= 8; txid++ {
		h.tx(3+uint32(txid), 1, uint32(txid))
	}
	wrong := ltx.ChecksumFlag | 12345
	for _, tc := range []struct {
		name string
		form fileForm
		o    fileOpts
		want string
	}{
		{"walship file applies", walshipForm, fileOpts{}, ""},
		{"walship file's pre-apply checksum wrong", walshipForm, fileOpts{pre: wrong}, "does not match the state after TXID 0000000000000005"},
		{"compatible file's state wrong", compatForm, fileOpts{post: wrong}, "but the file says " + wrong.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := file.New(t.TempDir())
			h.writeAs(t, c, litestreamForm, storage.SnapshotLevel, 1, 3, fileOpts{})
			h.writeAs(t, c, litestreamForm, 0, 4, 4, fileOpts{})
			h.writeAs(t, c, litestreamForm, 0, 5, 5, fileOpts{})
			h.writeAs(t, c, tc.form, 0, 6, 6, tc.o)
			h.writeAs(t, c, walshipForm, 0, 7, 8, fileOpts{})
			out := filepath.Join(t.TempDir(), "out.db")
			_, err := restore.Restore(ctx, c, out, restore.Options{IntegrityCheck: "none"})
			l, lerr := restore.List(ctx, c)
			if lerr != nil {
				t.Fatal(lerr)
			}
			_, serr := restore.ReadState(ctx, c, l, restore.Target{TXID: 8})
			for _, err := range []error{err, serr} {
				var fe *restore.FileError
				switch {
				case tc.want == "" && err != nil:
					t.Fatalf("restore: %v", err)
				case tc.want == "":
				case err == nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want):
					t.Fatalf("restore: %v; want an error about level 0 file 6 that says %q", err, tc.want)
				case fe.File.MinTXID != 6 || !fe.Damaged:
					t.Fatalf("restore blames %s (damaged %v); want level 0 file 6, damaged", storage.Describe(fe.File.Level, fe.File.MinTXID, fe.File.MaxTXID), fe.Damaged)
				}
			}
			if tc.want == "" {
				if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, h.bytes(8)) {
					t.Fatalf("the restored database is not the state after TXID 8 (%v)", err)
				}
				return
			}
			// Only a restore has output to speak of.
			if !strings.Contains(err.Error(), "no output was written") || strings.Contains(serr.Error(), "no output") {
				t.Errorf("restore says %q; ReadState says %q", err, serr)
			}
		})
	}
}
