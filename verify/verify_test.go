package verify_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
	"github.com/walship/walship/verify"
)

// TestWholeReplica: a replica the engine wrote, with level-0 files, two
// compaction levels and two snapshots, is whole; the report counts every
// file and byte of it; and every restore point it reports restores.
func TestWholeReplica(t *testing.T) {
	s := newSource(t, "a")
	newest := s.history()
	r := s.check()
	if !r.Whole() {
		t.Fatalf("a replica the engine wrote has problems:\n%s", dump(r))
	}

	var files int
	var bytes int64
	for _, st := range r.Levels {
		listed := s.files(st.Level)
		var size int64
		for _, f := range listed {
			size += f.Size
		}
		if st.Files != len(listed) || st.Bytes != size {
			t.Errorf("level %d: read %d files, %d bytes; it holds %d files, %d bytes", st.Level, st.Files, st.Bytes, len(listed), size)
		}
		files += st.Files
		bytes += st.Bytes
	}
	for _, level := range []int{0, 1, 2, storage.SnapshotLevel} {
		if len(s.files(level)) == 0 {
			t.Fatalf("the history wrote no file at level %d: the test covers less than it says", level)
		}
	}
	if len(r.Levels) != 4 || r.Files != files || r.Bytes != bytes {
		t.Errorf("report: %d levels, %d files, %d bytes; the levels add up to %d files, %d bytes", len(r.Levels), r.Files, r.Bytes, files, bytes)
	}
	if r.FilesWithChecksums != r.Files || r.FilesWithoutChecksums != 0 || r.Vanished != 0 {
		t.Errorf("%d files with checksums, %d without, %d vanished; want all %d with", r.FilesWithChecksums, r.FilesWithoutChecksums, r.Vanished, r.Files)
	}
	if r.Newest == nil || r.Newest.TXID != newest || r.Newest.Checksum != s.db.Pos().PostApplyChecksum || time.Since(r.Newest.Time) > time.Minute {
		t.Errorf("newest %+v; want TXID %s, checksum %s, written just now", r.Newest, newest, s.db.Pos().PostApplyChecksum)
	}
	// No retention ran: level 0 holds every TXID, and each is a restore point.
	if r.OldestRestorable == nil || r.OldestRestorable.TXID != 1 || r.RestorePoints != int(newest) || r.UnreachablePoints != 0 {
		t.Errorf("oldest restorable %+v, %d restore points, %d unreachable; want TXID 1 and %d points", r.OldestRestorable, r.RestorePoints, r.UnreachablePoints, newest)
	}
	for txid := ltx.TXID(1); txid <= newest; txid++ {
		out := filepath.Join(t.TempDir(), "restored.db")
		if _, err := restore.Restore(context.Background(), s.replica, out, restore.Options{Target: restore.Target{TXID: txid}}); err != nil {
			t.Fatalf("verify calls TXID %s restorable, but: %v", txid, err)
		}
	}

	live, err := verify.Database(context.Background(), s.path, s.staging, r)
	if err != nil {
		t.Fatal(err)
	}
	if r.Database == nil || r.Database.Status != verify.StatusInSync || live.Checksum != r.Newest.Checksum || live.Uncaptured || !r.Whole() {
		t.Fatalf("database %+v, live %+v; want in sync:\n%s", r.Database, live, dump(r))
	}
}

// TestWholeAfterRetention: replicas that retention pruned, after random
// runs of syncs, merges and snapshots, are whole, and each restore point
// verify counts restores.
func TestWholeAfterRetention(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pruned := 0
	for round := range 4 {
		s := newSource(t, fmt.Sprint(round))
		s.close()
		s.openWith(walship.Options{L0Retention: time.Nanosecond, SnapshotRetention: time.Duration(1+rng.IntN(3)) * 50 * time.Millisecond})
		for range 30 {
			switch n := rng.IntN(10); {
			case n < 6:
				s.step()
			case n < 8:
				s.compact(1 + rng.IntN(2))
			case n < 9:
				s.snapshot()
			default:
				if err := s.db.EnforceRetention(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		}
		time.Sleep(200 * time.Millisecond) // past the snapshot retention
		s.snapshot()
		if err := s.db.EnforceRetention(context.Background()); err != nil {
			t.Fatal(err)
		}
		r := s.check()
		if !r.Whole() || r.RestorePoints == 0 {
			t.Fatalf("round %d: %d restore points:\n%s", round, r.RestorePoints, dump(r))
		}
		l, err := restore.List(context.Background(), s.replica)
		if err != nil {
			t.Fatal(err)
		}
		restored := 0
		for txid := r.OldestRestorable.TXID; txid <= r.Newest.TXID; txid++ {
			if _, err := l.Plan(restore.Target{TXID: txid}); err != nil {
				continue // not a restore point
			}
			out := filepath.Join(t.TempDir(), "restored.db")
			if _, err := restore.Restore(context.Background(), s.replica, out, restore.Options{Target: restore.Target{TXID: txid}}); err != nil {
				t.Fatalf("round %d: verify found the replica whole, but TXID %s: %v", round, txid, err)
			}
			restored++
		}
		if restored != r.RestorePoints {
			t.Errorf("round %d: %d TXIDs restore; verify counted %d restore points", round, restored, r.RestorePoints)
		}
		if r.OldestRestorable.TXID > 1 && r.RestorePoints < int(r.Newest.TXID-r.OldestRestorable.TXID) {
			pruned++ // retention deleted history, and merged level-0 files
		}
	}
	if pruned == 0 {
		t.Fatal("retention pruned no replica: the test proves nothing about it")
	}
}

// TestCorruptFile: one flipped byte, in a file of any level, or a truncated
// file, is found with its kind, and the fix says whether deleting the file
// loses a restore point.
func TestCorruptFile(t *testing.T) {
	// The history's files: level 0 holds TXIDs 1 to 13, one file each;
	// level 1 2-5, 6-8 and 9-b; level 2 2-8; level 9 the snapshots 1-1
	// and 1-8.
	tests := []struct {
		name    string
		level   int
		pick    func([]*ltx.FileInfo) *ltx.FileInfo
		damage  func(t *testing.T, path string)
		kind    verify.Kind
		fix     []string // substrings of the file's fix
		blocked []ltx.TXID
	}{
		{
			// Level 1 file 2-5 merges TXID 3: its level-0 file is the
			// only copy of restore point 3, and restores to 4 go through it.
			name: "level 0", level: 0, pick: endingAt(3), damage: flipPageByte, kind: verify.KindChecksum,
			fix:     []string{"no other usable file holds TXIDs 0000000000000003-0000000000000003", "2 restore points, TXIDs 0000000000000003 to 0000000000000004, are lost", "walship replicate"},
			blocked: []ltx.TXID{3, 4},
		},
		{
			// Restores to 5, 6 and 7 read level 1 file 2-5; the level-0
			// files hold the same TXIDs.
			name: "level 1", level: 1, pick: endingAt(5), damage: flipPageByte, kind: verify.KindChecksum,
			fix:     []string{"delete level 1 file 0000000000000002-0000000000000005.ltx", "3 restore points, TXIDs 0000000000000005 to 0000000000000007, become restorable again"},
			blocked: []ltx.TXID{5, 6, 7},
		},
		{
			// Restores from 8 on start from the snapshot at 8: none reads
			// level 2 file 2-8.
			name: "level 2", level: 2, pick: first, damage: flipPageByte, kind: verify.KindChecksum,
			fix: []string{"delete level 2 file 0000000000000002-0000000000000008.ltx", "no restore needs it"},
		},
		{
			name: "snapshot", level: storage.SnapshotLevel, pick: last, damage: flipPageByte, kind: verify.KindChecksum,
			fix:     []string{"delete level 9 file 0000000000000001-0000000000000008.ltx", "6 restore points, TXIDs 0000000000000008 to 000000000000000d, become restorable again"},
			blocked: []ltx.TXID{8, 9, 10, 11, 12, 13},
		},
		{
			name: "truncated", level: 0, pick: endingAt(12), damage: truncate, kind: verify.KindTruncated,
			fix:     []string{"no other usable file holds TXIDs 000000000000000c-000000000000000c", "2 restore points, TXIDs 000000000000000c to 000000000000000d, are lost"},
			blocked: []ltx.TXID{12, 13},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSource(t, "a")
			if newest := s.history(); newest != 13 {
				t.Fatalf("the history reached TXID %s; the cases assume 000000000000000d", newest)
			}
			f := tt.pick(s.files(tt.level))
			tt.damage(t, s.filePath(f))
			r := s.check()
			p := mustFind(t, r, tt.kind, storage.Describe(f.Level, f.MinTXID, f.MaxTXID))
			if p.File == nil || p.File.Level != f.Level || p.File.MinTXID != f.MinTXID || p.File.MaxTXID != f.MaxTXID {
				t.Errorf("problem names file %+v", p.File)
			}
			for _, s := range tt.fix {
				if !strings.Contains(p.Fix, s) {
					t.Errorf("fix %q does not say %q", p.Fix, s)
				}
			}
			var blocked []ltx.TXID
			for _, u := range problemsOf(r, verify.KindUnreachable) {
				if u.File == nil || *u.File != *p.File {
					t.Errorf("unreachable points blamed on %s, not the damaged file: %s", u.Object, u.Message)
				}
				blocked = append(blocked, pointsIn(t, u.Message)...)
			}
			if !equalTXIDs(blocked, tt.blocked) || r.UnreachablePoints != len(tt.blocked) {
				t.Errorf("unreachable points %v (%d counted); want %v:\n%s", blocked, r.UnreachablePoints, tt.blocked, dump(r))
			}
			if r.Whole() || len(r.Problems) != 1+min(len(tt.blocked), 1) {
				t.Errorf("want the damaged file's problem and one range of unreachable points at most:\n%s", dump(r))
			}
		})
	}
}

// TestMissingFile: a file missing from the middle of the level-0 chain is a
// gap where no higher level holds its TXIDs; where one does, it is what
// retention leaves, and only restore points inside a merged file are lost.
func TestMissingFile(t *testing.T) {
	t.Run("uncovered", func(t *testing.T) {
		s := newSource(t, "a")
		newest := s.history()
		gone := endingAt(newest - 1)(s.files(0))
		os.Remove(s.filePath(gone))
		r := s.check()
		next := storage.Describe(0, newest, newest)
		p := mustFind(t, r, verify.KindGap, next)
		if !strings.Contains(p.Message, "TXIDs 000000000000000c-000000000000000c are missing") {
			t.Errorf("gap message %q does not name the missing TXIDs", p.Message)
		}
		u := mustFind(t, r, verify.KindUnreachable, "replica")
		if got := pointsIn(t, u.Message); !equalTXIDs(got, []ltx.TXID{newest}) || !strings.Contains(u.Message, "missing TXIDs") {
			t.Errorf("unreachable: %q; want TXID %s, and why", u.Message, newest)
		}
	})
	t.Run("covered", func(t *testing.T) {
		s := newSource(t, "a")
		s.history()
		// Level 1 file 2-5 merged TXIDs 2 to 5: retention deletes their
		// level-0 files together.
		for txid := ltx.TXID(2); txid <= 5; txid++ {
			os.Remove(s.filePath(endingAt(txid)(s.files(0))))
		}
		if r := s.check(); !r.Whole() {
			t.Fatalf("the level-0 files that level 1 merged are missing, as retention leaves them, and verify reports:\n%s", dump(r))
		}
		// Without level-0 file 6, restore point 7 lies inside level 1
		// file 6-8.
		os.Remove(s.filePath(endingAt(6)(s.files(0))))
		r := s.check()
		u := mustFind(t, r, verify.KindUnreachable, "replica")
		if got := pointsIn(t, u.Message); !equalTXIDs(got, []ltx.TXID{7}) || !strings.Contains(u.Message, "it lies inside") {
			t.Errorf("unreachable: %q; want TXID 7, inside a merged file", u.Message)
		}
		if len(r.Problems) != 1 {
			t.Errorf("want one problem:\n%s", dump(r))
		}
	})
}

// TestLevelGapHeldBelow: a gap at level 1 that level 0 holds loses no
// restore point and is no problem. A replica taken over from Litestream has
// one: Litestream's last level-0 files are in no higher level.
func TestLevelGapHeldBelow(t *testing.T) {
	s := newSource(t, "a")
	s.history()
	var l1 []*ltx.FileInfo
	for _, f := range s.files(1) {
		if f.MaxTXID > 1 {
			l1 = append(l1, f)
		}
	}
	if len(l1) < 3 {
		t.Fatalf("level 1 holds %d files after TXID 1; want three", len(l1))
	}
	// Only level 0 holds the TXIDs of the middle level-1 file now.
	os.Remove(s.filePath(l1[1]))
	for _, level := range []int{2, storage.SnapshotLevel} {
		for _, f := range s.files(level) {
			if f.MaxTXID >= l1[1].MinTXID {
				os.Remove(s.filePath(f))
			}
		}
	}
	if r := s.check(); !r.Whole() {
		t.Fatalf("a level-1 gap that level 0 holds is reported:\n%s", dump(r))
	}
}

// TestForeignFile: another database's LTX file, copied in under a name that
// fits, is found: by its checksums under its own TXIDs, by its header under
// others.
func TestForeignFile(t *testing.T) {
	s := newSource(t, "a")
	newest := s.history()
	other := newSource(t, "b")
	other.history()

	t.Run("same name", func(t *testing.T) {
		f := endingAt(newest)(s.files(0))
		foreign := endingAt(newest)(other.files(0))
		replaceFile(t, s.filePath(f), readAll(t, other.replica, foreign))
		r := s.check()
		name := storage.Describe(0, newest, newest)
		p := mustFind(t, r, verify.KindChain, name)
		if !strings.Contains(p.Message, "pre-apply checksum") || !strings.Contains(p.Fix, "two histories") {
			t.Errorf("problem %+v", p)
		}
		u := mustFind(t, r, verify.KindUnreachable, name)
		if !strings.Contains(u.Message, "the chain is broken") {
			t.Errorf("unreachable: %q", u.Message)
		}
	})
	t.Run("another name", func(t *testing.T) {
		foreign := endingAt(5)(other.files(0))
		next := newest + 1
		if err := os.WriteFile(s.replica.LTXFilePath(0, next, next), readAll(t, other.replica, foreign), 0o444); err != nil {
			t.Fatal(err)
		}
		r := s.check()
		p := mustFind(t, r, verify.KindName, storage.Describe(0, next, next))
		if !strings.Contains(p.Message, "its header holds TXIDs 0000000000000005-0000000000000005") {
			t.Errorf("message %q does not say what the header holds", p.Message)
		}
		mustFind(t, r, verify.KindUnreachable, storage.Describe(0, next, next))
	})
}

// TestBehindAndAhead compares replicas with the live database: behind when
// staged TXIDs were not uploaded, ahead when the replica holds TXIDs the
// database's history does not, and in sync with commits not captured yet
// (information, not a problem).
func TestBehindAndAhead(t *testing.T) {
	ctx := context.Background()
	t.Run("behind", func(t *testing.T) {
		s := newSource(t, "a")
		newest := s.history()
		s.commit(2)
		s.stage()
		s.commit(2)
		s.stage() // two TXIDs staged, not uploaded
		r := s.check()
		if !r.Whole() {
			t.Fatalf("before the comparison:\n%s", dump(r))
		}
		live, err := verify.Database(ctx, s.path, s.staging, r)
		if err != nil {
			t.Fatal(err)
		}
		p := mustFind(t, r, verify.KindBehind, "replica")
		if !strings.Contains(p.Message, "the 2 newest TXIDs") || !strings.Contains(p.Message, "in flight") || r.Database.Status != verify.StatusBehind {
			t.Errorf("problem %+v, status %q", p, r.Database.Status)
		}
		if live.Staged == nil || live.Staged.TXID != newest+2 || live.Uncaptured {
			t.Errorf("live %+v; want TXID %s staged, everything captured", live, newest+2)
		}
	})
	t.Run("uncaptured", func(t *testing.T) {
		s := newSource(t, "a")
		s.history()
		s.commit(2) // not captured
		r := s.check()
		live, err := verify.Database(ctx, s.path, s.staging, r)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Whole() || r.Database.Status != verify.StatusInSync || !live.Uncaptured {
			t.Fatalf("status %q, uncaptured %v:\n%s", r.Database.Status, live.Uncaptured, dump(r))
		}
		if !strings.Contains(strings.Join(r.Notes, "\n"), "not captured yet") {
			t.Errorf("the notes do not say that commits are not captured: %q", r.Notes)
		}
	})
	t.Run("ahead", func(t *testing.T) {
		// The database, and its staging directory, go back to TXID 6 (a
		// file-level backup put back), while the replica kept TXIDs up to 13.
		s := newSource(t, "a")
		for range 5 {
			s.step()
		}
		s.close()
		s.app.Close()
		saved := filepath.Join(t.TempDir(), "saved")
		if err := testutil.CopyTree(s.path, filepath.Join(saved, "app.db")); err != nil {
			t.Fatal(err)
		}
		if err := testutil.CopyTree(s.staging, filepath.Join(saved, "staging")); err != nil {
			t.Fatal(err)
		}
		s.openApp()
		s.open()
		for range 7 {
			s.step()
		}
		s.close()
		s.app.Close()
		for _, p := range []string{s.path, s.path + "-wal", s.path + "-shm", s.staging} {
			os.RemoveAll(p)
		}
		if err := testutil.CopyTree(filepath.Join(saved, "app.db"), s.path); err != nil {
			t.Fatal(err)
		}
		if err := testutil.CopyTree(filepath.Join(saved, "staging"), s.staging); err != nil {
			t.Fatal(err)
		}

		r := s.check()
		if _, err := verify.Database(ctx, s.path, s.staging, r); err != nil {
			t.Fatal(err)
		}
		p := mustFind(t, r, verify.KindAhead, "replica")
		if !strings.Contains(p.Message, "up to 000000000000000d, beyond 0000000000000006") || r.Database.Status != verify.StatusAhead {
			t.Errorf("problem %+v, status %q", p, r.Database.Status)
		}
		// Without the staging directory, the checksum alone says the same.
		r = s.check()
		if _, err := verify.Database(ctx, s.path, "", r); err != nil {
			t.Fatal(err)
		}
		p = mustFind(t, r, verify.KindAhead, "replica")
		if !strings.Contains(p.Message, "that of TXID 0000000000000006") {
			t.Errorf("problem %+v", p)
		}
	})
}

// TestCompareReplicas: replicas of two different databases, which hold the
// same TXIDs, disagree on each.
func TestCompareReplicas(t *testing.T) {
	a, b := newSource(t, "a"), newSource(t, "b")
	a.history()
	b.history()
	ra, rb := a.check(), b.check()
	same := a.check()
	verify.CompareReplicas(ra, same)
	if !ra.Whole() || !same.Whole() {
		t.Fatalf("a replica disagrees with itself:\n%s", dump(ra))
	}
	verify.CompareReplicas(ra, rb)
	pa := mustFind(t, ra, verify.KindDiverged, "replica")
	pb := mustFind(t, rb, verify.KindDiverged, "replica")
	// Compared from the newer of the two newest snapshots (TXID 8) on: a
	// replica taken over holds another history before its snapshot.
	if !strings.Contains(pa.Message, rb.Replica) || !strings.Contains(pb.Message, ra.Replica) || !strings.Contains(pa.Message, "TXID 0000000000000008 has") || !strings.Contains(pa.Message, "6 TXIDs differ") {
		t.Errorf("problems %q and %q", pa.Message, pb.Message)
	}
}

// TestWithoutChecksums: a replica of files without database checksums
// (Litestream writes them so) is whole, chained by TXIDs, and the report
// says how many files carried none.
func TestWithoutChecksums(t *testing.T) {
	s := newSource(t, "a")
	s.history()
	s.close()
	for level := 0; level <= storage.MaxLevel; level++ {
		for _, f := range s.files(level) {
			replaceFile(t, s.filePath(f), withoutChecksums(t, readAll(t, s.replica, f)))
		}
	}
	r := s.check()
	if !r.Whole() || r.FilesWithoutChecksums != r.Files || r.FilesWithChecksums != 0 || r.UnreachablePoints != 0 || r.Newest.Checksum != 0 {
		t.Fatalf("%d files, %d without checksums, newest %+v:\n%s", r.Files, r.FilesWithoutChecksums, r.Newest, dump(r))
	}
	if !strings.Contains(strings.Join(r.Notes, "\n"), "no database checksums") {
		t.Errorf("notes %q do not say the files carry no checksums", r.Notes)
	}
	// Without checksums, only the staged position tells where the database
	// is: compared by TXID with it, not compared without it.
	if _, err := verify.Database(context.Background(), s.path, s.staging, r); err != nil || r.Database.Status != verify.StatusInSync || !r.Whole() {
		t.Errorf("with the staging directory: %+v, %v:\n%s", r.Database, err, dump(r))
	}
	r = s.check()
	if _, err := verify.Database(context.Background(), s.path, "", r); err != nil || r.Database.Status != verify.StatusNotCompared || !r.Whole() {
		t.Errorf("without the staging directory: %+v, %v:\n%s", r.Database, err, dump(r))
	}
	// TXIDs are still checked.
	os.Remove(s.filePath(endingAt(12)(s.files(0))))
	mustFind(t, s.check(), verify.KindGap, storage.Describe(0, 13, 13))
}

// TestLitestreamCompatibleFiles: files walship writes for Litestream carry
// no database checksums but the state they end with (storage.ToLitestream):
// verify compares those states, with the database too, and finds two files
// that disagree on one TXID.
func TestLitestreamCompatibleFiles(t *testing.T) {
	s := newSource(t, "a")
	s.history()
	s.close()
	convert := func(f *ltx.FileInfo, post ltx.Checksum) {
		hdr, trailer, err := storage.ReadHeaderTrailer(context.Background(), s.replica, f)
		if err != nil {
			t.Fatal(err)
		}
		if post == 0 {
			post = storage.PostApplyChecksum(hdr, trailer)
		}
		var out bytes.Buffer
		if _, err := storage.ToLitestream(&out, bytes.NewReader(readAll(t, s.replica, f)), post, ""); err != nil {
			t.Fatal(err)
		}
		replaceFile(t, s.filePath(f), out.Bytes())
	}
	for level := 0; level <= storage.MaxLevel; level++ {
		for _, f := range s.files(level) {
			convert(f, 0)
		}
	}
	r := s.check()
	if _, err := verify.Database(context.Background(), s.path, "", r); err != nil || r.Database.Status != verify.StatusInSync {
		t.Fatalf("the database against the replica: %+v, %v:\n%s", r.Database, err, dump(r))
	}
	if !r.Whole() || r.FilesWithoutChecksums != r.Files || r.Newest.Checksum == 0 {
		t.Fatalf("%d files, %d without checksums, newest %+v:\n%s", r.Files, r.FilesWithoutChecksums, r.Newest, dump(r))
	}
	if notes := strings.Join(r.Notes, "\n"); !strings.Contains(notes, "written for Litestream") || strings.Contains(notes, "written by Litestream") {
		t.Errorf("notes %q do not say the files were written for Litestream", r.Notes)
	}
	// A level-1 file that says another state than level 0 at its end.
	f := last(s.files(1))
	convert(f, ltx.ChecksumFlag|42)
	mustFind(t, s.check(), verify.KindMismatch, storage.Describe(1, f.MinTXID, f.MaxTXID))
}

// TestEmptyReplica: nothing to restore is a problem.
func TestEmptyReplica(t *testing.T) {
	s := newSource(t, "a")
	r := s.check()
	mustFind(t, r, verify.KindEmpty, "replica")
}

// TestLitestream03Replica: a replica that holds no LTX file but a backup
// Litestream v0.3 wrote is not called empty: the report says what it holds
// and what walship does with it.
func TestLitestream03Replica(t *testing.T) {
	dir := t.TempDir()
	obj := filepath.Join(dir, "generations", "0123456789abcdef", "snapshots", "00000000.snapshot.lz4")
	if err := os.MkdirAll(filepath.Dir(obj), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(obj, []byte("a snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := verify.Replica(context.Background(), file.New(dir), verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := mustFind(t, r, verify.KindLitestream03, "replica")
	if len(r.Problems) != 1 || !strings.Contains(p.Message, "Litestream v0.3") || !strings.Contains(p.Message, "walship restore reads it") || !strings.Contains(p.Fix, "walship replicate") {
		t.Fatalf("the report has:\n%s", dump(r))
	}
}

func first(files []*ltx.FileInfo) *ltx.FileInfo { return files[0] }
func last(files []*ltx.FileInfo) *ltx.FileInfo  { return files[len(files)-1] }

// endingAt picks the file that ends at txid.
func endingAt(txid ltx.TXID) func([]*ltx.FileInfo) *ltx.FileInfo {
	return func(files []*ltx.FileInfo) *ltx.FileInfo {
		for _, f := range files {
			if f.MaxTXID == txid {
				return f
			}
		}
		panic("no file ends at " + txid.String())
	}
}

// truncate cuts a file in half.
func truncate(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, path, b[:len(b)/2])
}

// pointsIn returns the TXIDs a message of unreachable points names: "TXID
// x", or "n restore points, TXIDs x to y".
func pointsIn(t *testing.T, msg string) []ltx.TXID {
	t.Helper()
	parse := func(s string) ltx.TXID {
		txid, err := ltx.ParseTXID(s)
		if err != nil {
			t.Fatalf("message %q: %v", msg, err)
		}
		return txid
	}
	if rest, ok := strings.CutPrefix(msg, "restore point TXID "); ok {
		return []ltx.TXID{parse(rest[:16])}
	}
	_, rest, ok := strings.Cut(msg, "restore points, TXIDs ")
	if !ok {
		t.Fatalf("message %q names no restore point", msg)
	}
	var out []ltx.TXID
	for txid := parse(rest[:16]); txid <= parse(rest[20:36]); txid++ {
		out = append(out, txid)
	}
	return out
}

func equalTXIDs(a, b []ltx.TXID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
