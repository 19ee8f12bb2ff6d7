package restore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/superfly/ltx"
	_ "modernc.org/sqlite" // integrity checks of the restored file

	"github.com/walship/walship/internal/sqliteuri"
	"github.com/walship/walship/storage"
)

// Options configure Restore.
type Options struct {
	Target         Target
	IntegrityCheck string // "none", "quick" (default) or "full"
	Force          bool   // replace an existing database at the output path
}

// Result describes a finished restore.
type Result struct {
	Path     string        `json:"path"`
	TXID     ltx.TXID      `json:"txid"`
	Files    int           `json:"files"`
	Bytes    int64         `json:"bytes"`
	Pages    uint32        `json:"pages"`
	PageSize uint32        `json:"page_size"`
	Checksum ltx.Checksum  `json:"checksum"`
	Duration time.Duration `json:"duration_ns"`
}

// Restore plans and applies a restore of c to outPath.
func Restore(ctx context.Context, c storage.Client, outPath string, opts Options) (*Result, error) {
	start := time.Now()
	if err := checkOutput(outPath, opts.Force); err != nil {
		return nil, err
	}
	plan, err := CalcPlan(ctx, c, opts.Target)
	if err != nil {
		return nil, err
	}
	res, err := Apply(ctx, c, plan, outPath, opts)
	if err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	return res, nil
}

// checkOutput refuses to overwrite a database unless forced.
func checkOutput(outPath string, force bool) error {
	if force {
		return nil
	}
	for _, p := range []string{outPath, outPath + "-wal"} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s already exists; restore to another path with -o, or pass -force to replace it", p)
		} else if !os.IsNotExist(err) {
			return fmt.Errorf("check output path: %w", err)
		}
	}
	return nil
}

// Apply writes the plan into outPath.tmp, verifies it, and renames it to
// outPath. On any error the temporary file is removed and outPath is untouched.
func Apply(ctx context.Context, c storage.Client, plan *Plan, outPath string, opts Options) (res *Result, err error) {
	if err := checkOutput(outPath, opts.Force); err != nil {
		return nil, err
	}
	tmpPath := outPath + ".tmp"
	_ = os.Remove(tmpPath)
	f, err := os.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", tmpPath, err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(tmpPath)
		}
	}()

	a := &applier{f: f, client: c}
	for i, fi := range plan.Files {
		if err := a.apply(ctx, fi, i == 0); err != nil {
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", tmpPath, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close %s: %w", tmpPath, err)
	}
	f = nil
	if err := integrityCheck(ctx, tmpPath, opts.IntegrityCheck); err != nil {
		return nil, err
	}
	if opts.Force {
		// A WAL left from the database being replaced would be replayed on
		// top of the restored one.
		for _, p := range []string{outPath + "-wal", outPath + "-shm"} {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				return nil, fmt.Errorf("remove stale %s: %w", p, err)
			}
		}
	}
	if err := os.Rename(tmpPath, outPath); err != nil {
		return nil, fmt.Errorf("rename restored database into place: %w", err)
	}
	if err := syncDir(filepath.Dir(outPath)); err != nil {
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

// applier applies LTX files in order to a database file and tracks the
// checksum of every page, so each file's claimed pre- and post-apply checksums
// are checked against what was actually written.
type applier struct {
	f        *os.File
	client   storage.Client
	pageSize uint32
	commit   uint32
	sums     []ltx.Checksum
	total    ltx.Checksum
	txid     ltx.TXID
	verified bool // every file so far carried checksums
}

func (a *applier) set(pgno uint32, c ltx.Checksum) {
	for uint32(len(a.sums)) < pgno {
		a.sums = append(a.sums, 0)
	}
	a.total = ltx.ChecksumFlag | (a.total ^ a.sums[pgno-1] ^ c)
	a.sums[pgno-1] = c
}

func (a *applier) apply(ctx context.Context, fi *ltx.FileInfo, first bool) error {
	name := storage.Describe(fi.Level, fi.MinTXID, fi.MaxTXID)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("replica %s: %s: %s; the restore was abandoned and no output was written", a.client, name, fmt.Sprintf(format, args...))
	}
	rc, err := a.client.OpenLTXFile(ctx, fi.Level, fi.MinTXID, fi.MaxTXID, 0, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	dec := ltx.NewDecoder(rc)
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return fail("bad header: %v", err)
	}
	hdr := dec.Header()
	if hdr.MinTXID != fi.MinTXID || hdr.MaxTXID != fi.MaxTXID {
		return fail("its header says TXIDs %s-%s", hdr.MinTXID, hdr.MaxTXID)
	}
	if first {
		if !hdr.IsSnapshot() {
			return fail("the first file of a restore must be a snapshot")
		}
		a.pageSize, a.verified = hdr.PageSize, !hdr.NoChecksum()
	} else {
		if hdr.PageSize != a.pageSize {
			return fail("page size %d differs from the snapshot's %d", hdr.PageSize, a.pageSize)
		}
		if hdr.MinTXID > a.txid+1 {
			return fail("missing TXIDs %s-%s before it", a.txid+1, hdr.MinTXID-1)
		}
		if hdr.NoChecksum() {
			a.verified = false
		} else if a.verified && hdr.MinTXID == a.txid+1 && hdr.PreApplyChecksum != a.total {
			return fail("its pre-apply checksum %s does not match the state after TXID %s (%s): the chain is broken", hdr.PreApplyChecksum, a.txid, a.total)
		}
	}

	oldCommit := a.commit
	ps := int64(hdr.PageSize)
	buf := make([]byte, hdr.PageSize)
	h := ltx.NewHasher()
	zero := make([]byte, hdr.PageSize)
	lock := ltx.LockPgno(hdr.PageSize)
	// Pages the database grows into without a copy in the file read as zeros;
	// LTX pages ascend, so those are the gaps below each new page.
	grow := oldCommit + 1
	fillZeros := func(to uint32) {
		for ; grow < to; grow++ {
			c := ltx.ChecksumPageWithHasher(h, grow, zero)
			if grow == lock {
				c = 0
			}
			a.set(grow, c)
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, buf); err == io.EOF {
			break
		} else if err != nil {
			return fail("corrupt page data: %v", err)
		}
		if ph.Pgno > hdr.Commit {
			return fail("page %d lies beyond the database size of %d pages", ph.Pgno, hdr.Commit)
		}
		if _, err := a.f.WriteAt(buf, int64(ph.Pgno-1)*ps); err != nil {
			return fmt.Errorf("write restored page %d: %w", ph.Pgno, err)
		}
		fillZeros(ph.Pgno)
		grow = max(grow, ph.Pgno+1)
		a.set(ph.Pgno, ltx.ChecksumPageWithHasher(h, ph.Pgno, buf))
	}
	if err := dec.Close(); err != nil {
		return fail("%v (the file is truncated or corrupt)", err)
	}
	fillZeros(hdr.Commit + 1)
	for pgno := uint32(len(a.sums)); pgno > hdr.Commit; pgno-- {
		a.total = ltx.ChecksumFlag | (a.total ^ a.sums[pgno-1])
	}
	a.sums = a.sums[:min(uint32(len(a.sums)), hdr.Commit)]
	if err := a.f.Truncate(int64(hdr.Commit) * ps); err != nil {
		return fmt.Errorf("resize restored database: %w", err)
	}
	a.commit, a.txid = hdr.Commit, hdr.MaxTXID
	if a.verified && dec.Trailer().PostApplyChecksum != a.total {
		return fail("the restored state has checksum %s but the file says %s", a.total, dec.Trailer().PostApplyChecksum)
	}
	return nil
}

// integrityCheck runs SQLite's own check on the restored file.
func integrityCheck(ctx context.Context, path, mode string) error {
	var pragma string
	switch mode {
	case "none":
		return nil
	case "", "quick":
		pragma = "PRAGMA quick_check"
	case "full":
		pragma = "PRAGMA integrity_check"
	default:
		return fmt.Errorf("unknown integrity check %q: use none, quick or full", mode)
	}
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

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
