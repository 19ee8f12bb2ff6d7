package restore

import (
	"context"
	"errors"
	"fmt"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// A FileError is a restore that failed on one file of its plan.
type FileError struct {
	Replica string // the replica's description
	File    *ltx.FileInfo
	// Damaged is true when the file's content is wrong (it does not
	// decode, does not match its name, or does not give the state its
	// checksums promise), false when reading or saving it failed.
	Damaged bool
	Err     error
}

func (e *FileError) Error() string {
	return fmt.Sprintf("replica %s: %s: %v", e.Replica, describe(e.File), e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

func describe(f *ltx.FileInfo) string { return storage.Describe(f.Level, f.MinTXID, f.MaxTXID) }

// A Damaged file is one a restore found damaged and went around.
type Damaged struct {
	Level   int      `json:"level"`
	MinTXID ltx.TXID `json:"min_txid"`
	MaxTXID ltx.TXID `json:"max_txid"`
	Problem string   `json:"problem"`
}

// maxDamaged bounds how many damaged files one restore goes around before
// it gives up: each costs a new attempt from the first file.
const maxDamaged = 8

// ApplyListing applies plan, made from listing l, to outPath (see Apply).
// When a file of the plan proves damaged, it plans again without that file
// to the same TXID (an older snapshot and the level files after it, say)
// and starts over, and the Result lists what it went around. It never
// settles for an older state than plan's: when no other chain of files
// reaches that TXID, it fails, naming the damaged file and the way out.
func ApplyListing(ctx context.Context, c storage.Client, l *Listing, plan *Plan, outPath string, opts Options) (*Result, error) {
	var res *Result
	damaged, err := aroundDamaged(l, plan, func(p *Plan) error {
		var err error
		res, err = Apply(ctx, c, p, outPath, opts)
		return err
	})
	var fe *FileError
	if errors.As(err, &fe) {
		// What a file's error means for a restore; the same error
		// read elsewhere (a follower, walship replicate reading a
		// replica's state) means something else.
		return nil, fmt.Errorf("%w; the restore was abandoned and no output was written", err)
	}
	if err != nil {
		return nil, err
	}
	res.Damaged = damaged
	return res, nil
}

// CheckListing is Plan.Check for a dry run of ApplyListing: a file whose
// header or trailer shows it damaged is gone around as the restore would
// go around it. It returns the plan the restore would apply and what it
// would go around.
func CheckListing(ctx context.Context, c storage.Client, l *Listing, plan *Plan, parallelism int) (*Plan, []Damaged, error) {
	damaged, err := aroundDamaged(l, plan, func(p *Plan) error {
		plan = p
		return p.Check(ctx, c, parallelism)
	})
	return plan, damaged, err
}

// aroundDamaged calls try with plan, and while it fails on a damaged file
// (a *FileError), with a plan from l without that file to plan's TXID. It
// returns the files gone around.
func aroundDamaged(l *Listing, plan *Plan, try func(*Plan) error) ([]Damaged, error) {
	var damaged []Damaged
	want := plan.TXID()
	for {
		err := try(plan)
		var fe *FileError
		if err == nil || !errors.As(err, &fe) || !fe.Damaged {
			return damaged, err
		}
		if len(damaged) == maxDamaged {
			return damaged, fmt.Errorf("%w; %d damaged files were gone around before it, and walship gives up there: run walship verify on the replica", err, maxDamaged)
		}
		damaged = append(damaged, Damaged{Level: fe.File.Level, MinTXID: fe.File.MinTXID, MaxTXID: fe.File.MaxTXID, Problem: fe.Err.Error()})
		l = l.Without(fe.File)
		next, perr := l.Plan(Target{TXID: want})
		if perr != nil {
			return damaged, fmt.Errorf("%w; no other chain of files in the replica reaches TXID %s without it (%v): restore an earlier point with -txid (walship verify lists the ones that are whole), or from another replica", err, want, perr)
		}
		plan = next
	}
}

// Without returns the listing less file f (one found damaged, say).
func (l *Listing) Without(f *ltx.FileInfo) *Listing {
	var files []*ltx.FileInfo
	for _, fs := range l.levels {
		for _, g := range fs {
			if g != f {
				files = append(files, g)
			}
		}
	}
	return NewListing(l.replica, files)
}
