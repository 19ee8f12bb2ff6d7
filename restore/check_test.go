package restore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
)

// TestPlanCheckAgreesWithApply: the check of a dry run, which reads only
// headers and trailers, rejects each broken chain a real restore rejects,
// naming the file, and passes each chain a real restore applies.
func TestPlanCheckAgreesWithApply(t *testing.T) {
	h := tenTX()
	other := newHistory(1024) // another database, at another page size
	for range 10 {
		other.tx(4, 1, 2, 3, 4)
	}
	tests := []struct {
		name    string
		write   func(t *testing.T, c storage.Client)
		target  restore.Target
		wantErr []string // substrings of the check's error; none: the chain is good
	}{
		{
			name:  "good chain through every level",
			write: func(t *testing.T, c storage.Client) { writeAll(t, h, c, refs(l9(4), l1(5, 8), l0Each(9, 10))) },
		},
		{
			name:  "overlapping compacted file, which restore applies",
			write: func(t *testing.T, c storage.Client) { writeAll(t, h, c, refs(l9(5), l1(4, 8), l0Each(9, 10))) },
		},
		{
			name: "pre-apply checksum of a level-0 file",
			write: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, refs(l9(4), l0(5, 5), l0(7, 10)))
				h.write(t, c, 0, 6, 6, fileOpts{pre: h.checksum(5) ^ 1})
			},
			wantErr: []string{"level 0 file 0000000000000006-0000000000000006.ltx", "pre-apply checksum", "the chain is broken"},
		},
		{
			name: "post-apply checksum of a snapshot",
			write: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, l0Each(5, 10))
				h.write(t, c, storage.SnapshotLevel, 1, 4, fileOpts{post: h.checksum(4) ^ 1})
			},
			wantErr: []string{"level 0 file 0000000000000005-0000000000000005.ltx", "the state after TXID 0000000000000004"},
		},
		{
			name: "post-apply checksum of a compacted file",
			write: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, refs(l9(4), l0Each(9, 10)))
				h.write(t, c, 1, 5, 8, fileOpts{post: h.checksum(8) ^ 1})
			},
			wantErr: []string{"level 0 file 0000000000000009-0000000000000009.ltx", "pre-apply checksum"},
		},
		{
			name: "header that names other TXIDs",
			write: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, refs(l9(4), l0Each(6, 10)))
				h.write(t, c, 0, 6, 6, fileOpts{nameMin: 5, nameMax: 5})
			},
			wantErr: []string{"level 0 file 0000000000000005-0000000000000005.ltx", "has TXIDs 0000000000000006-0000000000000006 in its header"},
		},
		{
			name: "another database's file at another page size",
			write: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, refs(l9(4), l0Each(6, 10)))
				other.write(t, c, 0, 5, 5, fileOpts{})
			},
			wantErr: []string{"level 0 file 0000000000000005-0000000000000005.ltx", "pre-apply checksum", "the chain is broken"},
		},
		{
			name:   "a broken file after the target is not in the plan",
			target: restore.Target{TXID: 7},
			write: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, refs(l9(4), l0Each(5, 7), l0Each(9, 10)))
				h.write(t, c, 0, 8, 8, fileOpts{pre: 1 | ltx.ChecksumFlag})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newReplica(t)
			tt.write(t, c)
			ctx := context.Background()
			plan, err := restore.CalcPlan(ctx, c, tt.target)
			if err != nil {
				t.Fatal(err)
			}
			checkErr := plan.Check(ctx, c, 2)
			_, out := outPath(t)
			_, applyErr := restore.Apply(ctx, c, plan, out, noCheck)
			if len(tt.wantErr) == 0 {
				if checkErr != nil || applyErr != nil {
					t.Fatalf("check: %v; restore: %v; want both to pass", checkErr, applyErr)
				}
				return
			}
			if applyErr == nil {
				t.Fatalf("the restore passed: the test's chain is not broken")
			}
			if checkErr == nil {
				t.Fatalf("the check passed; the restore failed with %v", applyErr)
			}
			for _, s := range append(tt.wantErr, c.String()) {
				if !strings.Contains(checkErr.Error(), s) {
					t.Errorf("check error %q does not mention %q", checkErr, s)
				}
			}
		})
	}
}

// TestCheckChainGap: a plan with a hole (which CalcPlan never returns, but
// a hand-made plan may hold) names the missing TXIDs.
func TestCheckChainGap(t *testing.T) {
	files := []*ltx.FileInfo{{Level: 9, MinTXID: 1, MaxTXID: 4}, {Level: 0, MinTXID: 7, MaxTXID: 7}}
	hdrs := []ltx.Header{
		{Version: ltx.Version, PageSize: 512, Commit: 1, MinTXID: 1, MaxTXID: 4},
		{Version: ltx.Version, PageSize: 512, Commit: 1, MinTXID: 7, MaxTXID: 7, PreApplyChecksum: ltx.ChecksumFlag | 5},
	}
	err := restore.CheckChain(files, hdrs, make([]ltx.Trailer, 2), nil)
	if err == nil || !strings.Contains(err.Error(), "missing TXIDs 0000000000000005-0000000000000006") {
		t.Fatalf("error %v; want the missing TXIDs named", err)
	}
	// Without checksums (Litestream's files), TXIDs are still compared.
	hdrs[1].Flags, hdrs[1].PreApplyChecksum = ltx.HeaderFlagNoChecksum, 0
	if err := restore.CheckChain(files, hdrs, make([]ltx.Trailer, 2), nil); err == nil {
		t.Fatal("a gap between files without checksums passed")
	}
	hdrs[1].MinTXID, files[1].MinTXID = 5, 5
	if err := restore.CheckChain(files, hdrs, make([]ltx.Trailer, 2), nil); err != nil {
		t.Fatalf("files without checksums that follow each other: %v", err)
	}
}
