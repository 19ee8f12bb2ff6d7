package main

import (
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/machine"
)

// checkGoal fails t unless g shows target and judges the figure met.
func checkGoal(t *testing.T, what string, g goal, target string, met bool) {
	t.Helper()
	if g.target != target || g.met != met {
		t.Errorf("%s: %q, met %v; want %q, met %v", what, g.target, g.met, target, met)
	}
}

func TestShareOfDisk(t *testing.T) {
	checkGoal(t, "60% of a 1520 MB/s disk, 913 MB/s", shareOfDisk(0.60, 1520, 913), "≥ 60% of disk (≥ 912 MB/s)", true)
	checkGoal(t, "60% of a 1520 MB/s disk, 911 MB/s", shareOfDisk(0.60, 1520, 911), "≥ 60% of disk (≥ 912 MB/s)", false)
	checkGoal(t, "a disk not measured", shareOfDisk(0.60, 0, 5000), "≥ 60% of disk (not measured)", false)
}

func TestSnapshotAndRestoreGoals(t *testing.T) {
	b := &bench{keyFile: "/k/key"}
	dir, minio := b.targets()[0], b.targets()[1]
	l := limits{diskWrite: 1520, diskRead: 400} // the target divides the write rate, not the slower of the two
	const ok, fat = 60e6, 65e6                  // peak RSS under and over 64 MB

	checkGoal(t, "restore from a directory", restoreGoal(dir, "quick", 920, ok, l), "≥ 60% of disk (≥ 912 MB/s), RSS ≤ 64 MB", true)
	checkGoal(t, "restore from a directory, too slow", restoreGoal(dir, "quick", 900, ok, l), "≥ 60% of disk (≥ 912 MB/s), RSS ≤ 64 MB", false)
	checkGoal(t, "restore from a directory, too big", restoreGoal(dir, "quick", 920, fat, l), "≥ 60% of disk (≥ 912 MB/s), RSS ≤ 64 MB", false)
	checkGoal(t, "restore from MinIO", restoreGoal(minio, "quick", 610, ok, l), "≥ 600 MB/s, RSS ≤ 64 MB", true)
	checkGoal(t, "restore from MinIO, too slow", restoreGoal(minio, "quick", 590, ok, l), "≥ 600 MB/s, RSS ≤ 64 MB", false)
	checkGoal(t, "restore without the check", restoreGoal(dir, "none", 500, ok, l), "≥ 400 MB/s, RSS ≤ 64 MB (issue 5)", true)
	checkGoal(t, "encrypted restore", restoreGoal(minio.encrypted(), "quick", 390, ok, l), "≥ 400 MB/s, RSS ≤ 64 MB (issue 5)", false)

	checkGoal(t, "first snapshot to a directory", snapshotGoal(dir, 770, ok, l), "≥ 50% of disk (≥ 760 MB/s), RSS ≤ 64 MB", true)
	checkGoal(t, "first snapshot to a directory, too slow", snapshotGoal(dir, 750, ok, l), "≥ 50% of disk (≥ 760 MB/s), RSS ≤ 64 MB", false)
	checkGoal(t, "first snapshot to MinIO", snapshotGoal(minio, 410, ok, l), "≥ 400 MB/s, RSS ≤ 64 MB", true)
	checkGoal(t, "first snapshot to MinIO, too big", snapshotGoal(minio, 410, fat, l), "≥ 400 MB/s, RSS ≤ 64 MB", false)
	checkGoal(t, "encrypted first snapshot", snapshotGoal(dir.encrypted(), 310, ok, l), "≥ 300 MB/s, RSS ≤ 64 MB (issue 5)", true)

	if n := diskTargetNote(restoreGoal(dir, "quick", 920, ok, l), l); !strings.Contains(n, "1520 MB/s") {
		t.Errorf("a share of the disk does not say what it divides: %q", n)
	}
	if n := diskTargetNote(restoreGoal(minio, "quick", 610, ok, l), l); n != "" {
		t.Errorf("a target in MB/s is given a note about the disk: %q", n)
	}
}

func TestBiggerGoals(t *testing.T) {
	const small, smallPeak = 1088e6, 57e6 // flat is within 10%: 62.7 MB
	want := "≤ 20 s, RSS flat (≤ 63 MB: 57 MB at 1088 MB, +10%)"
	checkGoal(t, "10 GiB in 19 s", bigRestoreGoal(bigSize, 19*time.Second, 60e6, small, smallPeak), want, true)
	checkGoal(t, "10 GiB in 21 s", bigRestoreGoal(bigSize, 21*time.Second, 60e6, small, smallPeak), want, false)
	checkGoal(t, "10 GiB, memory grown", bigRestoreGoal(bigSize, 19*time.Second, 64e6, small, smallPeak), want, false)
	checkGoal(t, "no smaller restore", bigRestoreGoal(bigSize, 19*time.Second, 60e6, small, 0),
		"≤ 20 s, RSS flat (no smaller restore to compare with)", false)
	checkGoal(t, "-big 512MiB", bigRestoreGoal(512<<20, 900*time.Millisecond, 60e6, small, smallPeak),
		"≤ 1.0 s (20 s per 10 GiB, scaled), RSS flat (≤ 63 MB: 57 MB at 1088 MB, +10%)", true)

	checkGoal(t, "10 GiB first snapshot", bigSnapshotGoal(63e6), "peak RSS ≤ 64 MB", true)
	checkGoal(t, "10 GiB first snapshot, memory grown", bigSnapshotGoal(101e6), "peak RSS ≤ 64 MB", false)
}

func TestIdleScaleWriteCostGoals(t *testing.T) {
	b := &bench{}
	minio := b.targets()[1]
	checkGoal(t, "idle", idleGoal(minio, 0.0009, 39e6, 0), "≤ 0.1% of a core, RSS ≤ 40 MB, 0 requests", true)
	checkGoal(t, "idle, busy", idleGoal(minio, 0.0018, 39e6, 0), "≤ 0.1% of a core, RSS ≤ 40 MB, 0 requests", false)
	checkGoal(t, "idle, one request", idleGoal(minio, 0.0009, 39e6, 1), "≤ 0.1% of a core, RSS ≤ 40 MB, 0 requests", false)
	checkGoal(t, "idle, metrics served", idleGoal(minio.withMetrics(), 0.0018, 39e6, 0), "≤ 0.2% of a core, RSS ≤ 40 MB, 0 requests (issue 5)", true)

	want := "RSS ≤ 150 MB (peak), ≤ 10% of a core"
	checkGoal(t, "scale", scaleGoal(0.09, 149e6), want, true)
	checkGoal(t, "scale, busy", scaleGoal(0.11, 149e6), want, false)
	checkGoal(t, "scale, big", scaleGoal(0.09, 151e6), want, false)

	checkGoal(t, "write", writeGoal(minio, 0.975), "≥ 0.97", true)
	checkGoal(t, "write, slowed", writeGoal(minio, 0.96), "≥ 0.97", false)
	checkGoal(t, "write, metrics served", writeGoal(minio.withMetrics(), 0.98), "≥ 0.97 (issue 5)", true)

	checkGoal(t, "encryption cost", costGoal(0.91), "≥ 0.90", true)
	checkGoal(t, "encryption cost, too high", costGoal(0.89), "≥ 0.90", false)
}

func TestRPOGoal(t *testing.T) {
	b := &bench{keyFile: "/k/key"}
	dir, minio := b.targets()[0], b.targets()[1]
	zero := "sync-interval: 0s"
	checkGoal(t, "MinIO, sync-interval 0", rpoGoal(minio, zero, 99, 50*time.Millisecond, 0.024), "p99 ≤ 25 ms", true)
	checkGoal(t, "MinIO, sync-interval 0, late", rpoGoal(minio, zero, 99, 50*time.Millisecond, 0.030), "p99 ≤ 25 ms", false)
	checkGoal(t, "MinIO, sync-interval 0, not p99", rpoGoal(minio, zero, 90, 50*time.Millisecond, 0.010), "p99 ≤ 25 ms", false)
	checkGoal(t, "directory, sync-interval 0", rpoGoal(dir, zero, 99, 50*time.Millisecond, 0.030), "p99 ≤ 50 ms (issue 5)", true)
	checkGoal(t, "MinIO encrypted, sync-interval 0", rpoGoal(minio.encrypted(), zero, 99, 50*time.Millisecond, 0.030), "p99 ≤ 50 ms (issue 5)", true)
	checkGoal(t, "MinIO, default settings", rpoGoal(minio, "", 90, time.Second, 0.9), "p90 ≤ 1.00 s (issue 5)", true)
}

func TestScaleCase(t *testing.T) {
	if c := scaleCase(scaleTargetN); c != "1,000 databases, each written every 20 s" {
		t.Errorf("the full scale case is %q", c)
	}
	if c := scaleCase(200); !strings.HasPrefix(c, "200 databases") || !strings.Contains(c, "-quick") || !strings.Contains(c, "1,000") {
		t.Errorf("a -quick scale case with fewer databases than the target's does not say so: %q", c)
	}
	f := scaleFig{window: time.Minute, commits: 3000}
	if got := f.every(1000); got != 20*time.Second {
		t.Errorf("3,000 commits to 1,000 databases in a minute: each written every %s; want 20s", got)
	}
	if got := (scaleFig{window: time.Minute}).every(1000); got != 0 {
		t.Errorf("no commits: every %s; want 0", got)
	}
}

func TestReportSaysWhoseTargets(t *testing.T) {
	s := (&bench{}).report(machine.Facts{}, time.Minute, nil)
	for _, want := range []string{"The targets are issue 17's", "computed from the disk's fsynced sequential write rate measured at the start of the same run", `marked "(issue 5)"`, "issue 14's"} {
		if !strings.Contains(s, want) {
			t.Errorf("the report does not say %q", want)
		}
	}
	if strings.Contains(s, "the targets are those of issue 5") {
		t.Error("the report still says its targets are issue 5's")
	}
}

func TestEnoughSpace(t *testing.T) {
	dir := t.TempDir()
	if err := enoughSpace(dir, 1); err != nil {
		t.Errorf("one byte is not free: %v", err)
	}
	if err := enoughSpace(dir, 1<<62); err == nil || !strings.Contains(err.Error(), "-big 0") {
		t.Errorf("4 EiB is free, or the error does not say how to go on: %v", err)
	}
}
