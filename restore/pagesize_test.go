package restore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
)

// pageSizeChange returns a history at 512-byte pages up to TXID 4 and one
// at 1024-byte pages from TXID 5 on, where the database's page size
// changed: TXID 5 writes every page, as the full copy walship stages then.
// With full false, TXID 5 leaves page 3 out.
func pageSizeChange(full bool) (before, after *history) {
	before = newHistory(512)
	before.tx(3, 1, 2, 3) // 1
	before.tx(5, 1, 4, 5) // 2
	before.tx(5, 2)       // 3
	before.tx(6, 1, 6)    // 4
	after = newHistory(1024)
	for range 4 {
		after.tx(1, 1) // TXIDs 1-4 of this history are never written
	}
	if full {
		after.tx(4, 1, 2, 3, 4) // 5: the full copy
	} else {
		after.tx(4, 1, 2, 4)
	}
	after.tx(6, 6) // 6: grows
	after.tx(3, 2) // 7: shrinks
	return before, after
}

// writeAcross stores the history before a page-size change and the one
// after as one replica: the first file after the change chains onto the
// state before it.
func writeAcross(t *testing.T, c storage.Client, before, after *history, files ...fileRef) {
	t.Helper()
	for _, f := range files {
		switch {
		case f.max <= 4:
			before.write(t, c, f.level, f.min, f.max, fileOpts{})
		case f.min == 5:
			after.write(t, c, f.level, f.min, f.max, fileOpts{pre: before.checksum(4)})
		default:
			after.write(t, c, f.level, f.min, f.max, fileOpts{})
		}
	}
}

// TestRestoreAcrossPageSizeChange: after the database's page size changed,
// a restore replays the chain through the full copy walship wrote, at any
// TXID and through every level, with its dry run agreeing; a file at
// another page size that is not a full copy fails both, naming it.
func TestRestoreAcrossPageSizeChange(t *testing.T) {
	tests := []struct {
		name    string
		full    bool
		files   []fileRef
		target  ltx.TXID
		want    int // files applied
		wantErr []string
	}{
		{name: "latest, level 0", full: true, files: refs(l9(4), l0Each(5, 7)), want: 4},
		{name: "the full copy itself", full: true, files: refs(l9(2), l0Each(3, 7)), target: 5, want: 4},
		{name: "before the change", full: true, files: refs(l9(2), l0Each(3, 7)), target: 4, want: 3},
		{name: "compacted across the change", full: true, files: refs(l9(2), l1(3, 4), l1(5, 7)), want: 3},
		{
			name: "not a full copy", files: refs(l9(4), l0Each(5, 7)),
			wantErr: []string{"level 0 file 0000000000000005-0000000000000005.ltx", "page size changes from 512 to 1024", "must be a full copy"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, after := pageSizeChange(tt.full)
			c := newReplica(t)
			writeAcross(t, c, before, after, tt.files...)
			ctx := context.Background()
			target := restore.Target{TXID: tt.target}
			plan, err := restore.CalcPlan(ctx, c, target)
			if err != nil {
				t.Fatal(err)
			}
			checkErr := plan.Check(ctx, c, 2)
			dir, out := outPath(t)
			opts := noCheck
			opts.Target = target
			res, err := restore.Restore(ctx, c, out, opts)
			if tt.wantErr != nil {
				if err == nil || checkErr == nil {
					t.Fatalf("restore: %v; dry run: %v; want both to fail", err, checkErr)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) || !strings.Contains(checkErr.Error(), s) {
						t.Errorf("restore error %q or dry-run error %q does not mention %q", err, checkErr, s)
					}
				}
				checkNothingWritten(t, dir)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if checkErr != nil {
				t.Errorf("the dry run fails where the restore succeeds: %v", checkErr)
			}
			h, txid := after, tt.target
			if txid == 0 {
				txid = 7
			}
			if txid <= 4 {
				h = before
			}
			checkRestored(t, h, txid, out, res, tt.want)
		})
	}
}

// TestIsFullCopy: the page index of a file says whether it holds every
// page of its database.
func TestIsFullCopy(t *testing.T) {
	for _, full := range []bool{true, false} {
		_, after := pageSizeChange(full)
		c := newReplica(t)
		ctx := context.Background()
		for _, f := range []fileRef{l0(5, 5), l0(6, 6), l1(5, 7), l9(7)} {
			info := after.write(t, c, f.level, f.min, f.max, fileOpts{})
			hdr, _, err := storage.ReadHeaderTrailer(ctx, c, info)
			if err != nil {
				t.Fatal(err)
			}
			got, err := storage.IsFullCopy(ctx, c, info, hdr)
			if err != nil {
				t.Fatal(err)
			}
			// TXID 6 writes one page; TXIDs 5-7 hold every page only if 5
			// did; a snapshot always does.
			want := f.level == storage.SnapshotLevel || (full && f.min == 5)
			if got != want {
				t.Errorf("full %v: %s: IsFullCopy %v; want %v", full, f, got, want)
			}
		}
	}
}
