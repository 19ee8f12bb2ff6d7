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
	"syscall"
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
	// (OUT.tmp-fetch-N) and applied strictly in plan order; a large first
	// file on a remote replica is downloaded as that many parallel ranges
	// into OUT.tmp-fetch-0 and applied as the ranges arrive.
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
//
// Each file is read ahead of its decoding by one goroutine, and its pages are
// written, as runs of consecutive pages, by another, while the next ones are
// decoded (see apply); memory stays the same whatever the size of the
// database. The checksum of the database is checked after every file, and
// SQLite's check runs while the restored file is synced.
func Apply(ctx context.Context, c storage.Client, plan *Plan, outPath string, opts Options) (res *Result, err error) {
	if err := checkOutput(outPath, opts.Force); err != nil {
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
	tmpPath := outPath + ".tmp"
	_ = os.Remove(tmpPath)
	removeStaleFetches(tmpPath)
	f, err := os.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", tmpPath, err)
	}
	a := &applier{f: f, client: c, w: newPageWriter(f), bufs: readBuffers()}
	defer func() {
		if a.w != nil {
			a.w.close()
		}
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(tmpPath)
		}
	}()

	if n == 1 {
		err = a.applySequential(ctx, plan.Files)
	} else {
		err = a.applyParallel(ctx, plan.Files, tmpPath, n)
	}
	if err != nil {
		return nil, err
	}
	a.w.close() // every file's pages were flushed
	a.w = nil
	// The fsync and SQLite's check both only read the finished file: they
	// run at the same time, and both must pass before the rename.
	synced := make(chan error, 1)
	go func() { synced <- f.Sync() }()
	checkErr := integrityCheck(ctx, tmpPath, opts.IntegrityCheck)
	if err := <-synced; err != nil {
		return nil, fmt.Errorf("sync %s: %w", tmpPath, diskHint(err))
	}
	if checkErr != nil {
		return nil, checkErr
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close %s: %w", tmpPath, err)
	}
	f = nil
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
	w        *pageWriter // writes the pages to f
	bufs     [][]byte    // the read-ahead chunks
	pageSize uint32
	commit   uint32
	sums     pageSums
	total    ltx.Checksum
	txid     ltx.TXID
	verified bool // every file so far carried checksums
}

// set records the checksum of page pgno, which a.sums covers.
func (a *applier) set(pgno uint32, c ltx.Checksum) {
	a.total = ltx.ChecksumFlag | (a.total ^ a.sums.get(pgno) ^ c)
	a.sums.set(pgno, c)
}

// loadSums computes the checksums of pages from-to (of the restored
// database, all written) that are not known yet, from the file.
func (a *applier) loadSums(from, to uint32) error {
	ps := int(a.pageSize)
	lock := ltx.LockPgno(a.pageSize)
	h := ltx.NewHasher()
	var buf []byte
	for pgno := from; pgno <= to; {
		if a.sums.get(pgno) != 0 || pgno == lock {
			pgno++
			continue
		}
		// Read up to runBytes of pages from here at once.
		n := min(int(to-pgno)+1, max(runBytes/ps, 1))
		if buf == nil {
			buf = make([]byte, max(runBytes, ps))
		}
		b, err := readPages(a.f, buf[:n*ps], int64(pgno-1)*int64(ps))
		if err != nil {
			return fmt.Errorf("read restored pages %d-%d: %w", pgno, pgno+uint32(n)-1, err)
		}
		for i := range n {
			p := pgno + uint32(i)
			if a.sums.get(p) == 0 && p != lock {
				a.sums.set(p, ltx.ChecksumPageWithHasher(h, p, b[i*ps:(i+1)*ps]))
			}
		}
		pgno += uint32(n)
	}
	return nil
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
	return a.apply(ctx, fi, closingSource{rc}, first)
}

// closingSource is a streamed replica file whose blocked read (a stalled
// connection) is ended by closing it, so that a restore that failed on bad
// data does not wait for the transport to give up.
type closingSource struct{ io.ReadCloser }

func (s closingSource) interrupt() { s.Close() }

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
		// parallel ranges than as one stream; it is applied as they arrive.
		if err := a.applyDownloading(ctx, files[0], fetchPath(tmpPath, 0), n); err != nil {
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
	return a.downloadRanges(ctx, fi, f, n, nil)
}

// downloadRanges copies file fi of the replica, of known size, into f as
// ranges of rangeSize, up to n at a time, and calls done (if not nil) with
// the offset of each range once it is in f.
func (a *applier) downloadRanges(ctx context.Context, fi *ltx.FileInfo, f *os.File, n int, done func(off int64)) error {
	size := fi.Size
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
			} else if done != nil {
				done(off)
			}
		}()
	}
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return nil
}

// applyDownloading applies file fi, the first of the plan, while it is
// downloaded into path as up to n parallel ranges: the decoder reads each
// range as soon as it is in the file, and the ranges it has read are
// discarded from the file. path is removed before applyDownloading returns.
func (a *applier) applyDownloading(ctx context.Context, fi *ltx.FileInfo, path string, n int) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return a.failf(fi, "save the download: %w", err)
	}
	defer os.Remove(path)
	defer f.Close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ranges := newRangeTracker(fi.Size)
	fetched := make(chan error, 1)
	go func() {
		err := a.downloadRanges(ctx, fi, f, n, ranges.finish)
		ranges.end(err)
		fetched <- err
	}()
	err = a.apply(ctx, fi, &downloadReader{f: f, ranges: ranges, size: fi.Size}, true)
	cancel(errApplied)
	if ferr := <-fetched; err != nil && ferr != nil && ferr != errApplied {
		// The download failed: its error, which names the file, says why.
		return ferr
	}
	return err
}

// errApplied stops the download of a file that its applier no longer reads.
var errApplied = errors.New("the file was applied or abandoned")

// rangeTracker records which ranges of a download are in its file.
type rangeTracker struct {
	mu    sync.Mutex
	cond  sync.Cond
	done  []bool // by range
	ended bool   // the download returned, with err
	err   error
}

func newRangeTracker(size int64) *rangeTracker {
	t := &rangeTracker{done: make([]bool, (size+rangeSize-1)/rangeSize)}
	t.cond.L = &t.mu
	return t
}

// finish records that the range at off is in the file.
func (t *rangeTracker) finish(off int64) {
	t.mu.Lock()
	t.done[off/rangeSize] = true
	t.mu.Unlock()
	t.cond.Broadcast()
}

// end records that the download returned err; nothing more will finish.
func (t *rangeTracker) end(err error) {
	t.mu.Lock()
	if !t.ended {
		t.ended, t.err = true, err
	}
	t.mu.Unlock()
	t.cond.Broadcast()
}

// wait waits until range i is in the file, or the download ended without it.
func (t *rangeTracker) wait(i int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for !t.done[i] && !t.ended {
		t.cond.Wait()
	}
	switch {
	case t.done[i]:
		return nil
	case t.err != nil:
		return t.err
	default:
		return errors.New("the download ended early")
	}
}

// downloadReader reads a file as its download puts it in f, range by range,
// and discards each range from f once read.
type downloadReader struct {
	f      *os.File
	ranges *rangeTracker
	off    int64
	size   int64
}

func (r *downloadReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	i := r.off / rangeSize
	if err := r.ranges.wait(i); err != nil {
		return 0, err
	}
	end := min((i+1)*rangeSize, r.size)
	p = p[:min(int64(len(p)), end-r.off)]
	n, err := r.f.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	if r.off == end {
		// Read: its pages in the cache need not reach the disk.
		discard(r.f, i*rangeSize, end-i*rangeSize)
	}
	return n, err
}

// interrupt ends the reads of a reader no longer needed.
func (r *downloadReader) interrupt() { r.ranges.end(errApplied) }

// downloadRange reads n bytes of fi from off (n zero: to the end) into the
// same place of f, retrying a read that fails.
func (a *applier) downloadRange(ctx context.Context, fi *ltx.FileInfo, f *os.File, off, n int64) error {
	retryable := func(err error) bool { return !errors.Is(err, storage.ErrNotFound) }
	opened := false // the last attempt opened the file (so its error does not name it)
	err := storage.Retry(ctx, storage.DefaultRetry, retryable, func(ctx context.Context) error {
		rc, err := a.client.OpenLTXFile(ctx, fi.Level, fi.MinTXID, fi.MaxTXID, off, n)
		opened = err == nil
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
		if errors.Is(err, storage.ErrNotFound) && !opened {
			return err // the replica's error names the file
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

// apply applies one LTX file, read from r, to the database. The file is read
// ahead by another goroutine; its pages are decoded into runs of consecutive
// pages that the page writer checksums and writes while the next ones are
// decoded. Before apply returns, every page is written and the database's
// checksum is checked against the file's trailer.
func (a *applier) apply(ctx context.Context, fi *ltx.FileInfo, r io.Reader, first bool) error {
	fail := func(format string, args ...any) error { return a.failf(fi, format, args...) }
	ra := readAhead(ctx, r, a.bufs)
	defer ra.stop()
	// decodeErr reports an error of the decoder: the cancellation of the
	// restore, a failed read of the replica, or bad data.
	decodeErr := func(format string, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if serr, ok := isSourceError(err); ok {
			return fail("read failed: %w", serr)
		}
		return fail(format, err)
	}
	dec := ltx.NewDecoder(ra)
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return decodeErr("bad header: %v", err)
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

	oldCommit, commit := a.commit, hdr.Commit
	// a.sums covers the database before and after the file: the checksums of
	// pages above the old size are zero until they are written.
	if n := max(oldCommit, commit); a.sums.len() < n {
		a.sums.resize(n)
	}
	// The decoder itself checks that the checksum of a snapshot's pages is
	// the one its trailer claims. The first file is a snapshot: when it
	// carries checksums, the checksum of each of its pages is left unknown
	// (zero), and computed from the restored file only if a later file
	// overwrites or truncates the page. Otherwise the writer checksums every
	// page it writes.
	lazy := first && !hdr.NoChecksum()
	if lazy {
		a.w.begin(hdr.PageSize, nil, oldCommit)
	} else {
		a.w.begin(hdr.PageSize, &a.sums, oldCommit)
	}
	ps := int64(hdr.PageSize)
	h := ltx.NewHasher()
	zero := make([]byte, hdr.PageSize)
	lock := ltx.LockPgno(hdr.PageSize)
	// Pages the database grows into without a copy in the file read as zeros;
	// LTX pages ascend, so those are the gaps below each new page. They are
	// never written (the file reads zeros there), and their checksums are
	// kept here, apart from the pages the writer checksums.
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
	var last uint32 // the previous page of the file
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		buf, err := a.w.next()
		if err != nil {
			return err
		}
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, buf); err == io.EOF {
			break
		} else if err != nil {
			return decodeErr("corrupt page data: %v", err)
		}
		if ph.Pgno > commit {
			return fail("page %d lies beyond the database size of %d pages", ph.Pgno, commit)
		}
		if ph.Pgno <= last {
			return fail("page %d comes after page %d: the pages of an LTX file ascend (the file is corrupt)", ph.Pgno, last)
		}
		last = ph.Pgno
		fillZeros(ph.Pgno)
		grow = max(grow, ph.Pgno+1)
		if lazy && ph.Pgno == lock {
			// The decoder leaves the lock page out of its checksum.
			a.set(lock, ltx.ChecksumPageWithHasher(h, lock, buf))
		}
		if !lazy {
			a.sums.ensure(ph.Pgno) // for the writer
		}
		a.w.add(ph.Pgno)
	}
	if err := dec.Close(); err != nil {
		return decodeErr("%v (the file is truncated or corrupt)", err)
	}
	fillZeros(commit + 1)
	written, err := a.w.flush()
	if err != nil {
		return err
	}
	if lazy {
		// Close checked that the trailer holds the checksum of the pages.
		written = dec.Trailer().PostApplyChecksum
	}
	a.total = ltx.ChecksumFlag | (a.total ^ written)
	if a.sums.len() > commit {
		// The database shrinks: the truncated pages leave the checksum.
		if err := a.loadSums(commit+1, a.sums.len()); err != nil {
			return err
		}
		for pgno := a.sums.len(); pgno > commit; pgno-- {
			a.total = ltx.ChecksumFlag | (a.total ^ a.sums.get(pgno))
		}
		a.sums.resize(commit)
	}
	if err := a.f.Truncate(int64(commit) * ps); err != nil {
		return fmt.Errorf("resize restored database: %w", diskHint(err))
	}
	a.commit, a.txid = commit, hdr.MaxTXID
	if a.verified && dec.Trailer().PostApplyChecksum != a.total {
		return fail("the restored state has checksum %s but the file says %s", a.total, dec.Trailer().PostApplyChecksum)
	}
	return nil
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
