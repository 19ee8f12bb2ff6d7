package restore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/superfly/ltx"
	_ "modernc.org/sqlite" // integrity checks of the restored file

	"github.com/walship/walship/internal/sqliteuri"
	"github.com/walship/walship/restore/litestream03"
	"github.com/walship/walship/storage"
)

// Options configure Restore.
type Options struct {
	Target         Target
	IntegrityCheck string // "none", "quick" (default) or "full"
	Force          bool   // replace an existing database at the output path

	// Parallelism is how many LTX files are downloaded at once: 0 means
	// DefaultParallelism, 1 streams each file straight into the database as
	// it is applied. With more, the files after the one being applied are
	// downloaded concurrently into temporary files next to the output
	// (OUT.tmp-RANDOM-fetch-N) and applied strictly in plan order; a large first
	// file on a remote replica is downloaded as that many parallel ranges
	// into OUT.tmp-RANDOM-fetch-0 and applied as the ranges arrive.
	Parallelism int

	// Progress, when set, is told how far the restore has read the files
	// of its plan: bytes done of total (the plan's size), from the
	// goroutine that applies them. A restore that goes around a damaged
	// file starts again from zero with its new plan.
	Progress func(done, total int64)

	// replaceStep, when set, is called after each step of a replacement
	// (tests stop a restore there, as a kill would).
	replaceStep func(step string) error
}

// DefaultParallelism is the number of concurrent downloads when
// Options.Parallelism is zero.
const DefaultParallelism = 8

// Result describes a finished restore.
type Result struct {
	Path     string        `json:"path"`
	TXID     ltx.TXID      `json:"txid,omitempty"` // zero for a Litestream v0.3 backup
	Files    int           `json:"files"`
	Bytes    int64         `json:"bytes"`
	Pages    uint32        `json:"pages"`
	PageSize uint32        `json:"page_size"`
	Checksum ltx.Checksum  `json:"checksum"`
	Duration time.Duration `json:"duration_ns"`
	// Damaged lists the files the restore found damaged and went around
	// (see ApplyListing).
	Damaged []Damaged `json:"damaged,omitempty"`
	// Litestream03 is set when the restore read a Litestream v0.3 backup
	// (see RestoreLitestream03): where the state restored ends.
	Litestream03 *litestream03.Result `json:"litestream_v03,omitempty"`
}

// Restore plans and applies a restore of c to outPath, going around
// damaged files as ApplyListing does. When c's LTX files hold nothing at
// the target and c holds a Litestream v0.3 backup, that is restored instead
// (see Litestream03For).
func Restore(ctx context.Context, c storage.Client, outPath string, opts Options) (*Result, error) {
	start := time.Now()
	if err := CheckOutput(outPath, opts.Force); err != nil {
		return nil, err
	}
	l, err := List(ctx, c)
	if err != nil {
		return nil, err
	}
	plan, err := l.Plan(opts.Target)
	if err != nil {
		b, berr := Litestream03For(ctx, c, opts.Target, err)
		if berr != nil || b == nil {
			return nil, cmp.Or(berr, err)
		}
		return RestoreLitestream03(ctx, c, b, outPath, opts)
	}
	res, err := ApplyListing(ctx, c, l, plan, outPath, opts)
	if err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	return res, nil
}

// ExistingOutput returns the file a restore to outPath without Force would
// refuse to replace, or "" if there is none: the database, or a WAL or
// rollback journal of one, which SQLite would apply to the restored file
// when it next opens it (a hot journal's old pages written over the
// restored ones) even when the database itself is gone.
func ExistingOutput(outPath string) (string, error) {
	for _, p := range []string{outPath, outPath + "-wal", outPath + "-journal"} {
		if _, err := os.Lstat(p); err == nil {
			return p, nil
		} else if !os.IsNotExist(err) {
			return "", fmt.Errorf("check output path: %w", err)
		}
	}
	return "", nil
}

// CheckOutput refuses to overwrite a database unless forced.
func CheckOutput(outPath string, force bool) error {
	if force {
		return nil
	}
	p, err := ExistingOutput(outPath)
	if err != nil || p == "" {
		return err
	}
	if p != outPath {
		return fmt.Errorf("%s already exists, left by a database that is no longer at %s: SQLite would apply it to the restored database; move it away if that database is elsewhere, or pass -force to restore over it (it is then deleted)", p, outPath)
	}
	return fmt.Errorf("%s already exists; restore to another path with -o, pass -force to replace it, or -if-db-not-exists to keep it", p)
}

// Apply writes the plan into outPath.tmp, verifies it, and renames it to
// outPath. On any error the temporary file is removed and outPath is untouched.
//
// Each file is read ahead of its decoding by one goroutine, and its pages are
// written, as runs of consecutive pages, by another, while the next ones are
// decoded (see apply); memory stays the same whatever the size of the
// database. The checksum of the database is checked after every file, and
// SQLite's check runs while the restored file is synced.
func Apply(ctx context.Context, c storage.Client, plan *Plan, outPath string, opts Options) (res *Result, err error) {
	if err := CheckOutput(outPath, opts.Force); err != nil {
		return nil, err
	}
	if _, err := checkPragma(opts.IntegrityCheck); err != nil {
		return nil, err
	}
	n := opts.Parallelism
	if n == 0 {
		n = DefaultParallelism
	}
	if n < 0 {
		return nil, fmt.Errorf("invalid parallelism %d: it must be at least 1", n)
	}
	var a *applier
	err = writeOutput(ctx, outPath, opts, func(f *os.File) error {
		a = &applier{f: f, client: c, w: newPageWriter(f), bufs: readBuffers(), progress: storage.ProgressCounter(opts.Progress, plan.Size())}
		defer func() {
			if a.w != nil {
				a.w.close()
			}
		}()
		var err error
		if n == 1 {
			err = a.applySequential(ctx, plan.Files)
		} else {
			err = a.applyParallel(ctx, plan.Files, f.Name(), n)
		}
		if err != nil {
			return err
		}
		a.w.close() // every file's pages were flushed
		a.w = nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Result{
		Path:     outPath,
		TXID:     plan.TXID(),
		Files:    len(plan.Files),
		Bytes:    plan.Size(),
		Pages:    a.commit,
		PageSize: a.pageSize,
		Checksum: a.total,
	}, nil
}

// writeOutput holds outPath from the first byte written to the rename (see
// output): it locks the path, has write fill a temporary file of its own
// beside it, syncs that file while SQLite checks it, and renames it into
// place. On any error the temporary file is removed and outPath is
// untouched.
func writeOutput(ctx context.Context, outPath string, opts Options, write func(f *os.File) error) error {
	out, err := openOutput(outPath)
	if err != nil {
		return err
	}
	defer out.close()
	// Checked again under the lock: another restore may have written the
	// path since.
	if err := CheckOutput(outPath, opts.Force); err != nil {
		return err
	}
	f, tmpPath := out.tmp, out.tmp.Name()
	if err := write(f); err != nil {
		return err
	}
	// The fsync and SQLite's check both only read the finished file: they
	// run at the same time, and both must pass before the rename.
	synced := make(chan error, 1)
	go func() { synced <- f.Sync() }()
	checkErr := integrityCheck(ctx, tmpPath, opts.IntegrityCheck)
	if err := <-synced; err != nil {
		return fmt.Errorf("sync %s: %w", tmpPath, diskHint(err))
	}
	if checkErr != nil {
		return checkErr
	}
	out.tmp = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmpPath, err)
	}
	return out.commit(opts.Force, opts.replaceStep)
}

// checkPragma returns the statement of an integrity check mode ("" for
// none).
func checkPragma(mode string) (string, error) {
	switch mode {
	case "none":
		return "", nil
	case "", "quick":
		return "PRAGMA quick_check", nil
	case "full":
		return "PRAGMA integrity_check", nil
	default:
		return "", fmt.Errorf("unknown integrity check %q: use none, quick or full", mode)
	}
}

// integrityCheck runs SQLite's own check on the restored file.
func integrityCheck(ctx context.Context, path, mode string) error {
	pragma, err := checkPragma(mode)
	if err != nil || pragma == "" {
		return err
	}
	// Not through a memory map: it saves ~5% of a restore's time, but
	// every page mapped counts in the process's RSS (the whole database,
	// up to SQLite's 2 GB map limit), which is what the kernel's OOM
	// killer weighs and what an operator watches (bench/ANALYSIS.md).
	db, err := sql.Open("sqlite", sqliteuri.File(path, "mode=ro&immutable=1"))
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, pragma)
	if err != nil {
		return fmt.Errorf("integrity check of the restored database: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check of the restored database: %w", err)
	}
	if len(problems) > 0 {
		return errors.New("the restored database failed SQLite's integrity check: " + fmt.Sprint(problems))
	}
	return nil
}

// diskHint adds what to do to an error that says the disk is full.
func diskHint(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w (free space on that disk, or restore to another path with -o)", err)
	}
	return err
}
