package verify

import (
	"fmt"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// Fixes in operator words, shared by several problems.
const (
	fixReplicate = "keep `walship replicate` running on the database: it repairs the replica with a new snapshot when its audit (audit-interval, 10m by default, and at every start) finds files missing or cut short, when its verification (validation-interval) finds one damaged, and at its next scheduled snapshot after the database changes (snapshot: interval:, 24h by default)"
	fixHistories = "two histories were written to this replica (another database, a second writer, or a staging directory that was reset): make sure one walship alone replicates this database here, and run `walship verify DB_PATH` to see which history is the database's. " +
		"Then " + fixReplicate + ". Do not delete files until you know which history is wrong"
)

// analysis checks the history the files of one replica make, once they are
// read.
type analysis struct {
	r       *Report
	present []*checked                       // listed files still there, by level then TXIDs
	levels  [storage.MaxLevel + 1][]*checked // present, by level
	byInfo  map[*ltx.FileInfo]*checked
	// ref is, for each TXID a sound file that says its state ends at, the
	// file of the lowest level that does: the chain that compacted files
	// and snapshots are compared with.
	ref map[ltx.TXID]*checked
	bad []*checked // files no restore can use
	// cover[level] is what holds TXIDs for a gap at level: the files of the
	// levels above, and every snapshot; built on the first gap.
	cover [storage.MaxLevel + 1][]*ltx.FileInfo
}

func newAnalysis(r *Report, files []*checked) *analysis {
	a := &analysis{r: r, byInfo: make(map[*ltx.FileInfo]*checked), ref: make(map[ltx.TXID]*checked)}
	for _, f := range files {
		if f.gone {
			r.Vanished++
			continue
		}
		a.present = append(a.present, f)
		a.levels[f.info.Level] = append(a.levels[f.info.Level], f)
		a.byInfo[f.info] = f
		if f.bad != nil {
			a.bad = append(a.bad, f)
		}
	}
	for level := range a.levels {
		for _, f := range a.levels[level] {
			if _, ok := a.ref[f.info.MaxTXID]; !ok && f.post() != 0 {
				a.ref[f.info.MaxTXID] = f
			}
		}
	}
	return a
}

// count records what was read.
func (a *analysis) count() {
	r := a.r
	forLitestream := 0 // written by walship for Litestream (litestream-compatible)
	for level, files := range a.levels {
		if len(files) == 0 {
			continue
		}
		st := LevelStats{Level: level, Files: len(files)}
		for _, f := range files {
			st.Bytes += f.read
			switch {
			case f.sums():
				r.FilesWithChecksums++
			case f.sound():
				r.FilesWithoutChecksums++
				if f.post() != 0 {
					forLitestream++
				}
			}
		}
		r.Levels = append(r.Levels, st)
		r.Files += st.Files
		r.Bytes += st.Bytes
	}
	if r.Vanished > 0 {
		r.note(fmt.Sprintf("%d %s deleted while verify ran (retention, by a running replicator) and %s left out", r.Vanished, plural(r.Vanished, "file was", "files were"), plural(r.Vanished, "was", "were")))
	}
	if n := r.FilesWithoutChecksums - forLitestream; n > 0 {
		r.note(fmt.Sprintf("%d %s no database checksums (written by Litestream): %s chained by TXIDs only, and %s own file %s checked", n,
			plural(n, "file carries", "files carry"), plural(n, "it was", "they were"),
			plural(n, "its", "their"), plural(n, "checksum was", "checksums were")))
	}
	if n := forLitestream; n > 0 {
		r.note(fmt.Sprintf("%d %s written for Litestream (litestream-compatible): each says the state it ends with but not the one it applies to, so %s chained by TXIDs and compared with the files that end where %s end, and %s own file %s checked", n,
			plural(n, "file was", "files were"), plural(n, "it was", "they were"), plural(n, "it does", "they"),
			plural(n, "its", "their"), plural(n, "checksum was", "checksums were")))
	}
}

// checkLevels checks the chain of each level below the snapshots: files
// hold each TXID once, follow each other, and each applies to the state the
// file before it ends with. A file starting at TXID 1 is a snapshot: it
// starts a chain of its own, and the files after it continue from its end
// (as after a takeover, whose history starts apart from the old one). A gap
// is a problem only where no other level or snapshot covers it: retention
// deletes level-0 files once a higher level holds their TXIDs, and a
// replica taken over from Litestream holds its last level-0 files in no
// higher level (walship merges only what it wrote itself).
func (a *analysis) checkLevels() {
	for level := 0; level < storage.SnapshotLevel; level++ {
		endAt := make(map[ltx.TXID]*checked)
		for _, f := range a.levels[level] {
			if _, ok := endAt[f.info.MaxTXID]; !ok {
				endAt[f.info.MaxTXID] = f
			}
		}
		var prev *checked // the file after TXID 1 reaching furthest so far
		for _, f := range a.levels[level] {
			if f.info.MinTXID == 1 {
				continue
			}
			if before := endAt[f.info.MinTXID-1]; before != nil {
				a.checkLink(before, f)
			}
			switch {
			case prev == nil:
			case f.info.MinTXID <= prev.info.MaxTXID:
				a.r.add(Problem{Kind: KindOverlap, Object: f.name(), File: refOf(f.info),
					Message: fmt.Sprintf("it holds TXIDs %s-%s, which %s also holds: a level holds each TXID once",
						f.info.MinTXID, min(f.info.MaxTXID, prev.info.MaxTXID), prev.name()),
					Fix: fixHistories})
			case f.info.MinTXID > prev.info.MaxTXID+1:
				a.checkGap(level, prev, f)
			}
			if prev == nil || f.info.MaxTXID > prev.info.MaxTXID {
				prev = f
			}
		}
	}
}

// checkGap reports the TXIDs missing at a level between prev and next,
// unless other levels or snapshots hold them all.
func (a *analysis) checkGap(level int, prev, next *checked) {
	from, to := prev.info.MaxTXID+1, next.info.MinTXID-1
	if a.covered(level, from, to) {
		return
	}
	a.r.add(Problem{Kind: KindGap, Object: next.name(), File: refOf(next.info),
		Message: fmt.Sprintf("TXIDs %s-%s are missing before it at level %d (after %s), and no other level or snapshot holds them", from, to, level, prev.name()),
		Fix:     "restore points after the gap can start only from a snapshot taken after it: " + fixReplicate + "; the restore points between the gap and that snapshot are lost from this replica"})
}

// covered reports whether the files of the other levels, and the
// snapshots of any level, hold every TXID from-to.
func (a *analysis) covered(level int, from, to ltx.TXID) bool {
	if a.cover[level] == nil {
		var cover []*ltx.FileInfo
		for l, files := range a.levels {
			for _, f := range files {
				if l != level || f.info.MinTXID == 1 {
					cover = append(cover, f.info)
				}
			}
		}
		storage.SortFiles(cover)
		a.cover[level] = cover
	}
	next := from // the first TXID not known to be held
	for _, f := range a.cover[level] {
		if f.MinTXID > next {
			break
		}
		next = max(next, f.MaxTXID+1)
		if next > to {
			return true
		}
	}
	return false
}

// checkLink checks that next applies to the state prev ends with, where
// prev says that state and next carries checksums.
func (a *analysis) checkLink(prev, next *checked) {
	if prev.post() == 0 || !next.sums() || next.hdr.PreApplyChecksum == prev.post() {
		return
	}
	a.r.add(Problem{Kind: KindChain, Object: next.name(), File: refOf(next.info),
		Message: fmt.Sprintf("it does not apply to the state %s ends with: its pre-apply checksum is %s, that file's post-apply checksum %s",
			prev.name(), next.hdr.PreApplyChecksum, prev.post()),
		Fix: fixHistories})
}

// checkAcrossLevels checks that compacted files and snapshots agree with the
// chain they stand for: files of any level that end at one TXID have one
// post-apply checksum, and a file's pre-apply checksum is the state the
// chain of another level reached just before it.
func (a *analysis) checkAcrossLevels() {
	for _, f := range a.present {
		if f.post() == 0 {
			continue
		}
		if ref := a.ref[f.info.MaxTXID]; ref != f && ref.post() != f.post() {
			msg := fmt.Sprintf("it and %s disagree on the database after TXID %s: their post-apply checksums are %s and %s",
				ref.name(), f.info.MaxTXID, f.post(), ref.post())
			if f.info.Level == storage.SnapshotLevel {
				msg = "the snapshot does not match the chain it stands for: " + msg
			}
			a.r.add(Problem{Kind: KindMismatch, Object: f.name(), File: refOf(f.info), Message: msg, Fix: fixHistories})
		}
		if f.info.MinTXID == 1 || !f.sums() {
			continue
		}
		// The link to the file before it at its own level is checkLevels'.
		if ref := a.ref[f.info.MinTXID-1]; ref != nil && ref.info.Level != f.info.Level && ref.post() != f.hdr.PreApplyChecksum {
			a.r.add(Problem{Kind: KindChain, Object: f.name(), File: refOf(f.info),
				Message: fmt.Sprintf("it does not apply to the state after TXID %s that %s ends with: its pre-apply checksum is %s, that file's post-apply checksum %s",
					f.info.MinTXID-1, ref.name(), f.hdr.PreApplyChecksum, ref.post()),
				Fix: fixHistories})
		}
	}
}

// summarise records the newest state and the files' own problems, with
// their fixes (which the restore points decide).
func (a *analysis) summarise(fixes map[*checked]string) {
	var newest *checked
	for _, f := range a.present {
		if newest == nil || f.info.MaxTXID > newest.info.MaxTXID || (f.info.MaxTXID == newest.info.MaxTXID && f.post() != 0 && newest.post() == 0) {
			newest = f
		}
	}
	if newest != nil {
		a.r.Newest = a.point(newest.info.MaxTXID)
	}
	a.r.states = make(map[ltx.TXID]ltx.Checksum, len(a.ref))
	for txid, f := range a.ref {
		a.r.states[txid] = f.post()
	}
	for _, f := range a.present {
		if f.info.MinTXID == 1 && f.info.MaxTXID > a.r.chainStart {
			a.r.chainStart = f.info.MaxTXID
		}
	}
	for _, f := range a.bad {
		p := *f.bad
		p.Fix = fixes[f]
		a.r.add(p)
	}
}

// point describes the state after txid: the time and checksum of the files
// that end there, the lowest level's first.
func (a *analysis) point(txid ltx.TXID) *Point {
	p := &Point{TXID: txid}
	if ref := a.ref[txid]; ref != nil {
		p.Checksum = ref.post()
	}
	for _, files := range a.levels {
		for _, f := range files {
			if f.info.MaxTXID != txid {
				continue
			}
			switch {
			case f.sound() && f.hdr.Timestamp != 0:
				p.Time = time.UnixMilli(f.hdr.Timestamp).UTC()
			case p.Time.IsZero():
				p.Time = f.info.CreatedAt.UTC()
				continue
			default:
				continue
			}
			return p
		}
	}
	return p
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
