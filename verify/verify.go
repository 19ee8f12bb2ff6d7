// Package verify proves that a replica is whole, without writing a
// database: that every file reads back intact, that the files chain by
// TXIDs and checksums, that every restore point can be restored, and that
// the newest state is the live database's.
//
// Replica reads every file of a replica once, whole, through the LTX
// decoder, and checks the history the files make; Database compares the
// result with the live database, read without blocking its application;
// CompareReplicas compares replicas of one database with one another.
// Everything found is a Problem in the Report, with what to do about it: an
// error means only that the check could not be made.
package verify

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore/litestream03"
	"github.com/walship/walship/storage"
)

// DefaultParallelism is how many files Replica reads at once when
// Options.Parallelism is zero.
const DefaultParallelism = 8

// Options tune Replica.
type Options struct {
	// Parallelism is how many files are read at once: 0 means
	// DefaultParallelism. Memory grows with it, not with the replica: each
	// file is streamed through the decoder and never held.
	Parallelism int
	// Progress, when set, is told how far the files have been read: bytes
	// done of the listed files' total, from several goroutines at once.
	Progress func(done, total int64)
}

// Kind classifies a problem: a short, stable string for scripts.
type Kind string

// The kinds of problem.
const (
	KindEmpty       Kind = "empty"       // the replica holds no file
	KindChecksum    Kind = "checksum"    // a file's bytes do not match its checksum, or do not decode
	KindTruncated   Kind = "truncated"   // a file ends before its trailer
	KindName        Kind = "name"        // a file's header does not match its name or its level
	KindGap         Kind = "gap"         // TXIDs missing at a level that no other level or snapshot covers
	KindOverlap     Kind = "overlap"     // two files of one level hold the same TXIDs
	KindChain       Kind = "chain"       // a file does not apply to the state the file before it ends with
	KindMismatch    Kind = "mismatch"    // files that end at one TXID disagree on the state after it
	KindUnreachable Kind = "unreachable" // restore points that no restore can reach
	KindBehind      Kind = "behind"      // the replica lacks TXIDs the database has staged
	KindAhead       Kind = "ahead"       // the replica holds TXIDs beyond the database's history
	KindDiverged    Kind = "diverged"    // one TXID, two states: here and in the database or another replica
	KindDiffers     Kind = "differs"     // the database is not at the replica's newest state, and nothing says why
)

// KindLitestream03: the replica holds no LTX file but a backup that
// Litestream v0.3 wrote, which walship restores and does not verify.
const KindLitestream03 Kind = "litestream-v0.3"

// A Problem is one thing wrong with a replica.
type Problem struct {
	Kind Kind `json:"kind"`
	// Object is what the problem is about: a file ("level 0 file
	// 0000000000000005-0000000000000005.ltx"), "replica" or "database".
	Object  string   `json:"object"`
	File    *FileRef `json:"file,omitempty"` // the file, when Object is one
	Message string   `json:"message"`        // what is wrong, for an operator
	Fix     string   `json:"fix"`            // what to do about it
}

// A FileRef names a file of a replica.
type FileRef struct {
	Level   int      `json:"level"`
	Name    string   `json:"name"`
	MinTXID ltx.TXID `json:"min_txid"`
	MaxTXID ltx.TXID `json:"max_txid"`
}

func refOf(f *ltx.FileInfo) *FileRef {
	return &FileRef{Level: f.Level, Name: storage.FileName(f.MinTXID, f.MaxTXID), MinTXID: f.MinTXID, MaxTXID: f.MaxTXID}
}

// A Point is a state of the database in the replica.
type Point struct {
	TXID ltx.TXID  `json:"txid"`
	Time time.Time `json:"time"`
	// Checksum is the database checksum after TXID; zero when the files
	// that end there carry none (Litestream's).
	Checksum ltx.Checksum `json:"checksum,omitempty"`
}

// LevelStats counts what was read of one level.
type LevelStats struct {
	Level int   `json:"level"`
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// Report is what Replica checked and found.
type Report struct {
	Replica string       `json:"replica"` // the replica's description, without credentials
	Levels  []LevelStats `json:"levels"`  // the levels that hold files, lowest first
	Files   int          `json:"files"`   // files read
	Bytes   int64        `json:"bytes"`   // bytes read
	// Of the files read whole and found sound, FilesWithChecksums carry
	// pre- and post-apply database checksums; FilesWithoutChecksums
	// (written by Litestream) carry none, so only their TXIDs and their
	// own file checksums could be checked.
	FilesWithChecksums    int `json:"files_with_checksums"`
	FilesWithoutChecksums int `json:"files_without_checksums"`
	// Vanished counts files deleted between the listing and their read
	// (retention, while a replicator runs): they are left out.
	Vanished int `json:"vanished,omitempty"`

	Newest           *Point `json:"newest,omitempty"`            // the newest TXID of any file
	OldestRestorable *Point `json:"oldest_restorable,omitempty"` // the oldest restore point a restore reaches
	// RestorePoints counts the TXIDs, at or after the oldest snapshot, at
	// which a file of some level ends and which a restore reaches;
	// UnreachablePoints those it does not.
	RestorePoints     int `json:"restore_points"`
	UnreachablePoints int `json:"unreachable_points"`
	// LatestRestorable is whether a restore of the newest state, planned
	// as restore plans it, reads only sound files that chain: what the
	// replicator repairs with a new snapshot when it is false.
	LatestRestorable bool `json:"latest_restorable"`

	Database *DatabaseCheck `json:"database,omitempty"` // set by Database
	Notes    []string       `json:"notes,omitempty"`    // what is worth knowing but is not wrong
	Problems []Problem      `json:"problems"`

	// states is the database checksum after each TXID a file with
	// checksums ends at, as the lowest level's file says: for Database and
	// CompareReplicas.
	states map[ltx.TXID]ltx.Checksum
	// chainStart is the end of the newest snapshot: where the history
	// the replica continues today starts. Replicas of one database are
	// compared from there on: before it, one may hold the history of a
	// database that was taken over.
	chainStart ltx.TXID
}

// Whole reports whether no problem was found.
func (r *Report) Whole() bool { return len(r.Problems) == 0 }

func (r *Report) add(p Problem) { r.Problems = append(r.Problems, p) }

func (r *Report) note(s string) { r.Notes = append(r.Notes, s) }

// Replica reads and checks every file of the replica c: see the package
// comment. It lists each level once and reads each file once, whole,
// Options.Parallelism files at a time. The error is only for a check that
// could not be made (the replica is unreachable, a listing or a read
// failed); every problem of the replica is in the Report.
func Replica(ctx context.Context, c storage.Client, opts Options) (*Report, error) {
	n := opts.Parallelism
	if n <= 0 {
		n = DefaultParallelism
	}
	files, err := listAll(ctx, c)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	checked, err := readAll(ctx, c, files, n, storage.ProgressCounter(opts.Progress, total))
	if err != nil {
		return nil, err
	}
	r := &Report{Replica: c.String(), Levels: []LevelStats{}, Problems: []Problem{}}
	if len(files) == 0 {
		old, err := litestream03.Find(ctx, c)
		if err != nil {
			return nil, err
		}
		if old != nil {
			r.add(Problem{Kind: KindLitestream03, Object: "replica",
				Message: "the replica holds no LTX file: " + old.Explain(),
				Fix:     "walship verify checks walship's own files: run `walship replicate` on the database to start its history beside the v0.3 backup; until then, `walship restore -dry-run` shows what a restore of the v0.3 backup reads, and the restore checks every object it reads"})
			return r, nil
		}
		r.add(Problem{Kind: KindEmpty, Object: "replica",
			Message: "the replica holds no LTX file: there is nothing to restore",
			Fix:     "check the replica URL; if it is right, run `walship replicate` on the database: its first sync writes a snapshot"})
		return r, nil
	}
	a := newAnalysis(r, checked)
	a.count()
	a.checkLevels()
	a.checkAcrossLevels()
	fixes := a.checkRestorePoints()
	a.summarise(fixes)
	slices.SortStableFunc(r.Problems, func(x, y Problem) int { return cmp.Compare(problemOrder(x), problemOrder(y)) })
	return r, nil
}

// problemOrder puts the problems of files first, by level and TXIDs, each
// file's own before the restore points it blocks, then those of the replica.
func problemOrder(p Problem) int64 {
	if p.File == nil {
		return 1 << 62
	}
	order := int64(p.File.Level)<<56 | int64(p.File.MinTXID&(1<<55-1))<<1
	if p.Kind == KindUnreachable {
		order |= 1
	}
	return order
}

// listAll lists every level once.
func listAll(ctx context.Context, c storage.Client) ([]*ltx.FileInfo, error) {
	var files []*ltx.FileInfo
	for level := 0; level <= storage.MaxLevel; level++ {
		fs, err := c.LTXFiles(ctx, level)
		if err != nil {
			return nil, err // it names the replica
		}
		storage.SortFiles(fs)
		files = append(files, fs...)
	}
	return files, nil
}
