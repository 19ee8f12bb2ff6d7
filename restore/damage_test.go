package restore_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
)

// corrupt stores the file for TXIDs min-max at a level with one byte of a
// page flipped: it decodes up to its checksum, which does not match.
func corrupt(t *testing.T, h *history, c storage.Client, level int, min, max ltx.TXID) {
	t.Helper()
	b := h.encode(t, min, max, fileOpts{})
	b[len(b)/2] ^= 0xff
	if _, err := c.WriteLTXFile(context.Background(), level, min, max, bytes.NewReader(b), h.txTime(max)); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreAroundDamagedFiles: a damaged newest snapshot, or a damaged
// compacted file, is gone around through the replica's other files to the
// same TXID, and the result names what was gone around; with no other way
// to that TXID the restore fails, naming the file and the way out, and
// writes nothing.
func TestRestoreAroundDamagedFiles(t *testing.T) {
	h := tenTX()
	tests := []struct {
		name    string
		setup   func(t *testing.T, c storage.Client)
		target  restore.Target
		txid    ltx.TXID
		files   int
		damaged []string
		wantErr []string
	}{{
		name: "newest snapshot damaged",
		setup: func(t *testing.T, c storage.Client) {
			writeAll(t, h, c, refs(l9(3), l0Each(1, 10)))
			corrupt(t, h, c, storage.SnapshotLevel, 1, 10)
		},
		txid: 10, files: 8, damaged: []string{"level 9 file 0000000000000001-000000000000000a.ltx"},
	}, {
		name: "snapshot of the target TXID damaged",
		setup: func(t *testing.T, c storage.Client) {
			writeAll(t, h, c, refs(l9(3), l0Each(1, 10)))
			corrupt(t, h, c, storage.SnapshotLevel, 1, 8)
		},
		target: restore.Target{TXID: 8}, txid: 8, files: 6, damaged: []string{"level 9 file 0000000000000001-0000000000000008.ltx"},
	}, {
		name: "two damaged files on the way",
		setup: func(t *testing.T, c storage.Client) {
			writeAll(t, h, c, refs(l9(3), l0Each(4, 10)))
			corrupt(t, h, c, storage.SnapshotLevel, 1, 9)
			corrupt(t, h, c, 1, 4, 8)
		},
		txid: 10, files: 8, damaged: []string{"level 9 file 0000000000000001-0000000000000009.ltx", "level 1 file 0000000000000004-0000000000000008.ltx"},
	}, {
		name: "no other way to the newest TXID",
		setup: func(t *testing.T, c storage.Client) {
			writeAll(t, h, c, refs(l9(3), l0Each(4, 9)))
			corrupt(t, h, c, 0, 10, 10)
		},
		wantErr: []string{"level 0 file 000000000000000a-000000000000000a.ltx", "no other chain of files", "reaches TXID 000000000000000a", "-txid"},
	}, {
		name: "only snapshot damaged",
		setup: func(t *testing.T, c storage.Client) {
			corrupt(t, h, c, storage.SnapshotLevel, 1, 5)
		},
		wantErr: []string{"level 9 file 0000000000000001-0000000000000005.ltx", "no other chain of files"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newReplica(t)
			tt.setup(t, c)
			dir, out := outPath(t)
			opts := noCheck
			opts.Target = tt.target
			res, err := restore.Restore(context.Background(), c, out, opts)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("restore succeeded: %+v", res)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				checkNothingWritten(t, dir)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkRestored(t, h, tt.txid, out, res, tt.files)
			var got []string
			for _, d := range res.Damaged {
				got = append(got, storage.Describe(d.Level, d.MinTXID, d.MaxTXID))
				if d.Problem == "" {
					t.Errorf("damaged file %+v: no problem given", d)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.damaged, ",") {
				t.Errorf("damaged files %v; want %v", got, tt.damaged)
			}
		})
	}
}

// A dry run goes around what the restore goes around, and plans what it
// applies: the two never disagree on whether a replica restores.
func TestDryRunAroundDamagedFiles(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, refs(l9(3), l0Each(1, 10)))
	// The newest snapshot's name says 1-10, its header 1-9.
	b := h.encode(t, 1, 9, fileOpts{})
	if _, err := c.WriteLTXFile(context.Background(), storage.SnapshotLevel, 1, 10, bytes.NewReader(b), h.txTime(10)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := restore.List(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := l.Plan(restore.Target{})
	if err != nil {
		t.Fatal(err)
	}
	checked, damaged, err := restore.CheckListing(ctx, c, l, plan, 4)
	if err != nil {
		t.Fatalf("the dry run fails where the restore succeeds: %v", err)
	}
	if len(damaged) != 1 || damaged[0].Level != storage.SnapshotLevel || damaged[0].MaxTXID != 10 {
		t.Fatalf("the dry run went around %+v; want the level-9 file ending at TXID 10", damaged)
	}
	_, out := outPath(t)
	res, err := restore.Restore(ctx, c, out, noCheck)
	if err != nil {
		t.Fatal(err)
	}
	checkRestored(t, h, 10, out, res, len(checked.Files))
	if len(res.Damaged) != 1 || res.Damaged[0].Level != damaged[0].Level || res.Damaged[0].MaxTXID != damaged[0].MaxTXID {
		t.Fatalf("the restore went around %+v, the dry run %+v", res.Damaged, damaged)
	}
}
