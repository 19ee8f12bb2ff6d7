package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/fsutil"
	"github.com/walship/walship/storage"
)

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
		fsutil.Discard(r.f, i*rangeSize, end-i*rangeSize)
	}
	return n, err
}

// interrupt ends the reads of a reader no longer needed.
func (r *downloadReader) interrupt() { r.ranges.end(errApplied) }

// downloadRange reads n bytes of fi from off (n zero: to the end) into the
// same place of f, retrying a read that fails.
func (a *applier) downloadRange(ctx context.Context, fi *ltx.FileInfo, f *os.File, off, n int64) error {
	retryable := func(err error) bool {
		return !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrKey) && !errors.Is(err, storage.ErrDamaged)
	}
	opened := false // the last attempt opened the file (so its error does not name it)
	err := storage.Retry(ctx, storage.DefaultRetry, retryable, func(ctx context.Context) error {
		rc, err := a.client.OpenLTXFile(ctx, fi.Level, fi.MinTXID, fi.MaxTXID, off, n)
		opened = err == nil
		if err != nil {
			return err
		}
		defer rc.Close()
		w := io.NewOffsetWriter(f, off)
		got, err := io.Copy(w, storage.ContextReader(ctx, rc))
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
		if errors.Is(err, storage.ErrDamaged) {
			return a.damagedf(fi, "%v", err) // an encrypted file that does not authenticate
		}
		return a.failf(fi, "download failed: %w", err)
	}
	return nil
}
