package restore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

	// Parallelism is how many LTX files are downloaded at once: 0 means
	// DefaultParallelism, 1 streams each file straight into the database as
	// it is applied. With more, the files after the one being applied are
	// downloaded concurrently into temporary files next to the output
	// (OUT.tmp-fetch-N) and applied strictly in plan order.
	Parallelism int
}

// DefaultParallelism is the number of concurrent downloads when
// Options.Parallelism is zero.
const DefaultParallelism = 8

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
	n := opts.Parallelism
	if n == 0 {
		n = DefaultParallelism
	}
	if n < 0 {
		return nil, fmt.Errorf("invalid parallelism %d: it must be at least 1", n)
	}
	tmpPath := outPath + ".tmp"
	_ = os.Remove(tmpPath)
	removeStaleFetches(tmpPath)
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
	if n == 1 {
		err = a.applySequential(ctx, plan.Files)
	} else {
		err = a.applyParallel(ctx, plan.Files, tmpPath, n)
	}
	if err != nil {
		return nil, err
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

// open opens one file of the plan on the replica.
func (a *applier) open(ctx context.Context, fi *ltx.FileInfo) (io.ReadCloser, error) {
	return a.client.OpenLTXFile(ctx, fi.Level, fi.MinTXID, fi.MaxTXID, 0, 0)
}

// streamFile applies a file read straight from the replica.
func (a *applier) streamFile(ctx context.Context, fi *ltx.FileInfo, first bool) error {
	rc, err := a.open(ctx, fi)
	if err != nil {
		return err
	}
	defer rc.Close()
	return a.apply(ctx, fi, rc, first)
}

// applySequential applies the files in order, each streamed from the replica
// as it is applied.
func (a *applier) applySequential(ctx context.Context, files []*ltx.FileInfo) error {
	for i, fi := range files {
		if err := a.streamFile(ctx, fi, i == 0); err != nil {
			return err
		}
	}
	return nil
}

// fetched is the outcome of downloading one file of the plan.
type fetched struct {
	path string // the temporary file holding it
	err  error
}

// fetchPath is the temporary file that file i of the plan is downloaded to.
func fetchPath(tmpPath string, i int) string {
	return fmt.Sprintf("%s-fetch-%d", tmpPath, i)
}

// removeStaleFetches removes the temporary downloads an interrupted restore
// to the same output left behind.
func removeStaleFetches(tmpPath string) {
	entries, err := os.ReadDir(filepath.Dir(tmpPath))
	if err != nil {
		return
	}
	prefix := filepath.Base(tmpPath) + "-fetch-"
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" || e.IsDir() {
			continue
		}
		_ = os.Remove(filepath.Join(filepath.Dir(tmpPath), e.Name()))
	}
}

// applyParallel applies the files in order while downloading up to n of
// them at once. The first file is streamed straight into the database; each
// later one is downloaded into its own temporary file, up to n files ahead of
// the one being applied, and that file is deleted as soon as it is applied.
// Every download holds one of n slots from when it starts until its file is
// taken up by the applier (the first file: until it is applied), so at most n
// files are downloading, and at most n+1 temporary files exist, at any time.
// The first error, of a download or of the applier, cancels everything else
// and every temporary file is removed before applyParallel returns.
func (a *applier) applyParallel(ctx context.Context, files []*ltx.FileInfo, tmpPath string, n int) (err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	slots := make(chan struct{}, n)
	results := make([]chan fetched, len(files))
	for i := range results {
		results[i] = make(chan fetched, 1)
	}
	next := 1 // the first file whose result the applier has not taken
	var wg sync.WaitGroup
	defer func() {
		cancel(errAbandoned)
		wg.Wait()
		// Downloads finished but not applied.
		for i := next; i < len(files); i++ {
			select {
			case r := <-results[i]:
				if r.path != "" {
					_ = os.Remove(r.path)
				}
			default:
			}
		}
		// An error caused by the cancellation of a failed download is
		// reported as that download's error.
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && cause != errAbandoned && errors.Is(err, context.Canceled) {
				err = cause
			}
		}
	}()

	slots <- struct{}{} // the first file's
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i < len(files); i++ {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				path, err := a.fetch(ctx, files[i], fetchPath(tmpPath, i))
				if err != nil {
					cancel(err)
				}
				results[i] <- fetched{path, err}
			}()
		}
	}()

	if a.rangesWorthIt(files[0], n) {
		// A large first file (a snapshot, usually) downloads faster as
		// parallel ranges than as one stream.
		path := fetchPath(tmpPath, 0)
		if err := a.download(ctx, files[0], path, n, true); err != nil {
			return err
		}
		if err := a.applyFetched(ctx, files[0], path, true); err != nil {
			return err
		}
	} else if err := a.streamFile(ctx, files[0], true); err != nil {
		return err
	}
	<-slots
	for ; next < len(files); next++ {
		var r fetched
		select {
		case r = <-results[next]:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		<-slots
		if r.err != nil {
			return r.err
		}
		if err := a.applyFetched(ctx, files[next], r.path, false); err != nil {
			return err
		}
	}
	return nil
}

// errAbandoned cancels the downloads still running when applyParallel
// returns.
var errAbandoned = errors.New("the restore was abandoned")

// applyFetched applies a downloaded file and deletes it.
func (a *applier) applyFetched(ctx context.Context, fi *ltx.FileInfo, path string, first bool) error {
	defer os.Remove(path)
	f, err := os.Open(path)
	if err != nil {
		return a.failf(fi, "open its download: %w", err)
	}
	defer f.Close()
	return a.apply(ctx, fi, f, first)
}

// fetch downloads one file of the plan into path. On error nothing is left
// at path.
func (a *applier) fetch(ctx context.Context, fi *ltx.FileInfo, path string) (string, error) {
	if err := a.download(ctx, fi, path, 1, a.ranged()); err != nil {
		return "", err
	}
	return path, nil
}

// ranged reports whether the replica reads ranges on the server.
func (a *applier) ranged() bool {
	rr, ok := a.client.(storage.RangeReader)
	return !ok || rr.RangedReads()
}

// rangeSize is the length of one ranged read of a large file.
const rangeSize = 8 << 20

// rangesWorthIt reports whether file fi should be downloaded as n parallel
// ranges: it is large and on a remote replica (a local file reads faster as
// one stream).
func (a *applier) rangesWorthIt(fi *ltx.FileInfo, n int) bool {
	return a.ranged() && n > 1 && fi.Size >= 2*rangeSize && a.client.Type() != "file"
}

// download copies file fi of the replica into path, as ranges of rangeSize,
// up to n at a time (or, unless ranged, as one stream). A range whose read fails midway (a reset connection, a
// timeout) is read again, with backoff, so one bad moment of the network does
// not abandon a long restore. On error nothing is left at path.
func (a *applier) download(ctx context.Context, fi *ltx.FileInfo, path string, n int, ranged bool) (err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return a.failf(fi, "save the download: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = a.failf(fi, "save the download: %w", cerr)
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	size := fi.Size
	if size <= 0 || !ranged {
		// Unknown size: one stream to the end.
		return a.downloadRange(ctx, fi, f, 0, 0)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, max(n, 1))
	var wg sync.WaitGroup
	for off := int64(0); off < size; off += rangeSize {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := a.downloadRange(ctx, fi, f, off, min(rangeSize, size-off)); err != nil {
				cancel(err)
			}
		}()
	}
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return nil
}

// downloadRange reads n bytes of fi from off (n zero: to the end) into the
// same place of f, retrying a read that fails.
func (a *applier) downloadRange(ctx context.Context, fi *ltx.FileInfo, f *os.File, off, n int64) error {
	retryable := func(err error) bool { return !errors.Is(err, storage.ErrNotFound) }
	err := storage.Retry(ctx, storage.DefaultRetry, retryable, func(ctx context.Context) error {
		rc, err := a.client.OpenLTXFile(ctx, fi.Level, fi.MinTXID, fi.MaxTXID, off, n)
		if err != nil {
			return err
		}
		defer rc.Close()
		w := io.NewOffsetWriter(f, off)
		got, err := io.Copy(w, ctxReader{ctx, rc})
		if err == nil && n > 0 && got != n {
			err = fmt.Errorf("read %d bytes at offset %d; want %d", got, off, n)
		}
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if errors.Is(err, storage.ErrNotFound) {
			return err
		}
		return a.failf(fi, "download failed: %w", err)
	}
	return nil
}

// ctxReader stops reading once ctx is done, whether or not the replica's
// reader watches ctx itself.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// failf formats an error about one file of the plan.
func (a *applier) failf(fi *ltx.FileInfo, format string, args ...any) error {
	return fmt.Errorf("replica %s: %s: %w; the restore was abandoned and no output was written",
		a.client, storage.Describe(fi.Level, fi.MinTXID, fi.MaxTXID), fmt.Errorf(format, args...))
}

// apply applies one LTX file, read from r, to the database.
func (a *applier) apply(ctx context.Context, fi *ltx.FileInfo, r io.Reader, first bool) error {
	fail := func(format string, args ...any) error { return a.failf(fi, format, args...) }
	dec := ltx.NewDecoder(r)
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
