package verify_test

import (
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship/verify"
)

// TestBehindOnlyBeforeVerifyBegan: a replica that holds what was staged
// when verify began is not behind, though the replicator staged more while
// the replica was read; one that lacks it is.
func TestBehindOnlyBeforeVerifyBegan(t *testing.T) {
	for _, tc := range []struct {
		newest, before ltx.TXID
		behind         bool
	}{
		{newest: 8, before: 8, behind: false},
		{newest: 9, before: 8, behind: false},
		{newest: 7, before: 8, behind: true},
		{newest: 8, before: 0, behind: true}, // nothing known of before
	} {
		live := &verify.Live{Path: "/db", Checksum: ltx.ChecksumFlag | 1, StagedBefore: tc.before,
			Staged: &verify.Staged{Dir: "/staging", TXID: 10, Checksum: ltx.ChecksumFlag | 1}}
		r := &verify.Report{Newest: &verify.Point{TXID: tc.newest, Checksum: ltx.ChecksumFlag | 2}}
		live.Compare(r)
		behind := false
		for _, p := range r.Problems {
			behind = behind || p.Kind == verify.KindBehind
		}
		if behind != tc.behind {
			t.Errorf("newest %s, staged %s when verify began, 10 now: behind %v, want %v (%s)", tc.newest, tc.before, behind, tc.behind, r.Database.Message)
		}
	}
}
