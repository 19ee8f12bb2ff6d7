package restore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
)

// referencePlan is the planner as it was before Listing, scanning every file
// at every step: the oracle that Listing.Plan must agree with, file for file
// and error for error.
func referencePlan(replica string, levels [][]*ltx.FileInfo, target restore.Target) ([]*ltx.FileInfo, error) {
	eligible := func(f *ltx.FileInfo) bool {
		if target.TXID != 0 && f.MaxTXID > target.TXID {
			return false
		}
		return target.Timestamp.IsZero() || !f.CreatedAt.After(target.Timestamp)
	}
	var newest ltx.TXID
	any := false
	for _, files := range levels {
		for _, f := range files {
			any = true
			newest = max(newest, f.MaxTXID)
		}
	}
	if !any {
		return nil, fmt.Errorf("replica %s: %w", replica, restore.ErrNoFiles)
	}
	if target.TXID > newest {
		return nil, fmt.Errorf("replica %s: TXID %s is not in the backup: the newest TXID is %s", replica, target.TXID, newest)
	}
	var plan []*ltx.FileInfo
	var cur ltx.TXID
	for _, f := range levels[storage.SnapshotLevel] {
		if f.MinTXID == 1 && eligible(f) && f.MaxTXID > cur {
			plan, cur = []*ltx.FileInfo{f}, f.MaxTXID
		}
	}
	for target.TXID == 0 || cur < target.TXID {
		var best *ltx.FileInfo
		for level := storage.MaxLevel; level >= 0; level-- {
			for _, f := range levels[level] {
				if f.MinTXID > cur+1 || f.MaxTXID <= cur || !eligible(f) {
					continue
				}
				if cur == 0 && f.MinTXID != 1 {
					continue
				}
				if best == nil || f.MaxTXID > best.MaxTXID {
					best = f
				}
			}
		}
		if best == nil {
			break
		}
		plan = append(plan, best)
		cur = best.MaxTXID
	}
	want := target.TXID
	if want == 0 {
		for _, files := range levels {
			for _, f := range files {
				if eligible(f) {
					want = max(want, f.MaxTXID)
				}
			}
		}
	}
	if cur >= want && len(plan) > 0 {
		return plan, nil
	}
	return nil, errors.New("no plan") // the wording is TestCalcPlan's to check
}

// randomLayout returns the files of a replica of up to n TXIDs: snapshots,
// compacted files that may overlap, nest or skip TXIDs, and level-0 files
// with holes, written one second per TXID.
func randomLayout(rng *rand.Rand, n int) [][]*ltx.FileInfo {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	levels := make([][]*ltx.FileInfo, storage.MaxLevel+1)
	names := map[string]bool{} // a replica holds one file of a name
	add := func(level int, minTXID, maxTXID ltx.TXID) {
		name := storage.Describe(level, minTXID, maxTXID)
		if names[name] {
			return
		}
		names[name] = true
		levels[level] = append(levels[level], &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID,
			CreatedAt: base.Add(time.Duration(maxTXID) * time.Second)})
	}
	for txid := ltx.TXID(1); txid <= ltx.TXID(n); txid++ {
		if rng.IntN(8) != 0 {
			add(0, txid, txid)
		}
		if rng.IntN(6) == 0 {
			add(storage.SnapshotLevel, 1, txid)
		}
	}
	for level := 1; level <= 3; level++ {
		for txid := ltx.TXID(1 + rng.IntN(3)); txid <= ltx.TXID(n); {
			span := ltx.TXID(1 + rng.IntN(5))
			add(level, txid, min(txid+span, ltx.TXID(n)))
			if rng.IntN(8) == 0 {
				// A long file that others nest inside.
				add(level, txid, min(txid+span+ltx.TXID(5+rng.IntN(10)), ltx.TXID(n)))
			}
			// Mostly contiguous; sometimes a hole, sometimes an overlap.
			switch rng.IntN(5) {
			case 0:
				txid += span + 2
			case 1:
				txid += max(span-1, 1)
			default:
				txid += span + 1
			}
		}
	}
	for _, fs := range levels {
		storage.SortFiles(fs)
	}
	return levels
}

// TestListingPlanMatchesReference plans every TXID, times and the latest
// state of random replicas with both planners: the same files, in the same
// order, or both no plan.
func TestListingPlanMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	plans := 0
	for layout := range 300 {
		levels := randomLayout(rng, 5+rng.IntN(40))
		var all []*ltx.FileInfo
		for _, fs := range levels {
			all = append(all, fs...)
		}
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		l := restore.NewListing("test", all)
		if l.Len() != len(all) {
			t.Fatalf("layout %d: Len %d, want %d", layout, l.Len(), len(all))
		}
		targets := []restore.Target{{}}
		for txid := ltx.TXID(1); txid <= l.Newest()+1; txid++ {
			targets = append(targets, restore.Target{TXID: txid}, restore.Target{Timestamp: base.Add(time.Duration(txid)*time.Second + time.Millisecond)})
		}
		for _, target := range targets {
			want, wantErr := referencePlan("test", levels, target)
			got, err := l.Plan(target)
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("layout %d, %s: Plan error %v, reference error %v", layout, target, err, wantErr)
			}
			if err != nil {
				continue
			}
			plans++
			if !slices.Equal(got.Files, want) {
				t.Fatalf("layout %d, %s: Plan %v; reference %v", layout, target, describe(got.Files), describe(want))
			}
		}
	}
	if plans < 1000 {
		t.Fatalf("only %d targets had a plan: the layouts test too little", plans)
	}
}

func describe(files []*ltx.FileInfo) []string {
	var out []string
	for _, f := range files {
		out = append(out, storage.Describe(f.Level, f.MinTXID, f.MaxTXID))
	}
	return out
}

// TestListOnce: CalcPlan and List read each level once, and plans from a
// listing read nothing more.
func TestListOnce(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, refs(l9(4), l1(5, 8), l0Each(1, 10)))
	counting := &countingLister{Lister: c}
	l, err := restore.List(context.Background(), counting)
	if err != nil {
		t.Fatal(err)
	}
	for txid := ltx.TXID(1); txid <= 10; txid++ {
		if _, err := l.Plan(restore.Target{TXID: txid}); err != nil {
			t.Fatalf("TXID %s: %v", txid, err)
		}
	}
	if counting.calls != storage.MaxLevel+1 {
		t.Fatalf("listed %d times for ten plans; want once per level (%d)", counting.calls, storage.MaxLevel+1)
	}
	if got := len(l.Files(0)); got != 10 {
		t.Fatalf("Files(0) holds %d files, want 10", got)
	}
}

type countingLister struct {
	restore.Lister
	calls int
}

func (c *countingLister) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	c.calls++
	return c.Lister.LTXFiles(ctx, level)
}

// TestByNewest: replicas ordered by the newest TXID each holds, the given
// order among equals; one that cannot be listed is a ListError naming it.
func TestByNewest(t *testing.T) {
	ctx := context.Background()
	h := tenTX()
	behind, ahead, same, empty := newReplica(t), newReplica(t), newReplica(t), newReplica(t)
	writeAll(t, h, behind, refs(l9(4)))
	writeAll(t, h, ahead, refs(l9(4), l0Each(5, 10)))
	writeAll(t, h, same, refs(l9(10)))
	order, err := restore.ByNewest(ctx, []restore.Lister{empty, behind, ahead, same})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{2, 3, 1, 0}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}

	broken := failingLister{Lister: ahead}
	_, err = restore.ByNewest(ctx, []restore.Lister{behind, broken})
	var le *restore.ListError
	if !errors.As(err, &le) || le.Index != 1 || !errors.Is(err, errList) {
		t.Fatalf("an unreadable replica: %v; want a ListError for index 1", err)
	}
}

var errList = errors.New("listing refused")

type failingLister struct{ restore.Lister }

func (failingLister) LTXFiles(context.Context, int) ([]*ltx.FileInfo, error) { return nil, errList }
