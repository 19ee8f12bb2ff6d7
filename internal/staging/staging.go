// Package staging keeps a database's history durably on the local disk
// until every replica has it: the staging directory beside the database.
// It writes LTX files atomically (temporary name, fsync, rename, directory
// fsync), records where in the WAL the newest staged state was captured
// (the position file) and the checksum of each of its pages (the checksums
// file), finds on start-up how far the staged history reaches, and removes
// what is no longer needed.
//
// The directory's layout is the file backend's (ltx/<level>/<min>-<max>.ltx),
// so a Dir is also a storage.Client over the staged files.
package staging

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/fsutil"
	"github.com/walship/walship/internal/pagesum"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// Temporary files in the directory itself: page indexes that LTX encoders
// and compactors spill, and merged uploads. Open removes those a crash left.
const (
	spillPattern = ".ltx-page-index-*.tmp"
	mergePattern = ".merge-*.tmp"
)

// spillPages is how many page index entries (~24 bytes each) an LTX encoder
// or compactor keeps in memory before spilling the rest to the directory.
const spillPages = 1 << 16

// Dir is a staging directory.
type Dir struct {
	*file.Client
	path     string
	log      *slog.Logger
	sums     *checksums
	spill    *pagesum.Spill
	lock     *fsutil.Lock
	identity string
}

// New returns the staging directory at path. It does no I/O until Open.
func New(path string, log *slog.Logger) *Dir {
	if log == nil {
		log = slog.Default()
	}
	return &Dir{Client: file.New(path), path: path, log: log}
}

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

// Open creates the directory if needed, locks it for this process (see
// lock), reads or creates the database's identity, removes the temporary
// files a crash left, and opens the checksums file.
func (d *Dir) Open() (err error) {
	if err := os.MkdirAll(d.path, 0o755); err != nil {
		return fmt.Errorf("create staging directory %s: %w", d.path, err)
	}
	if d.lock == nil {
		if d.lock, err = lock(d.path); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				d.lock.Unlock()
				d.lock = nil
			}
		}()
	}
	if d.identity, err = readIdentity(d.path); err != nil {
		return err
	}
	if err := d.RemoveTempFiles(); err != nil {
		return fmt.Errorf("clean staging directory: %w", err)
	}
	patterns := []string{spillPattern, mergePattern}
	if d.spill == nil {
		patterns = append(patterns, pagesum.SpillPattern)
	}
	for _, pattern := range patterns {
		left, _ := filepath.Glob(filepath.Join(d.path, pattern))
		for _, p := range left {
			os.Remove(p)
		}
	}
	if d.sums == nil {
		var err error
		if d.sums, err = openChecksums(d.path); err != nil {
			return err
		}
	}
	if d.spill == nil {
		d.spill = pagesum.NewSpill(d.path)
	}
	return nil
}

// Spill returns the file in the directory that the page checksums of
// the staged state spill to, so that their memory does not grow with the
// database (see pagesum.NewSpilled). Nil before Open and after Close:
// states are then held in memory.
func (d *Dir) Spill() *pagesum.Spill { return d.spill }

// Close closes the checksums file and releases the directory's lock.
func (d *Dir) Close() error {
	var err error
	if d.sums != nil {
		err = d.sums.Close()
		d.sums = nil
	}
	if d.spill != nil {
		err = errors.Join(err, d.spill.Close())
		d.spill = nil
	}
	if d.lock != nil {
		err = errors.Join(err, d.lock.Unlock())
		d.lock = nil
	}
	return err
}

// Identity returns the database's identity: a random name created with the
// directory, which the replicas' owner records hold. Empty before Open.
func (d *Dir) Identity() string { return d.identity }

// CreateTemp creates a temporary file in the directory, for a merged upload.
// The caller removes it; Open removes one a crash left.
func (d *Dir) CreateTemp() (*os.File, error) {
	return os.CreateTemp(d.path, mergePattern)
}

// Write encodes one LTX file into the directory, atomically: body writes the
// pages and sets the post-apply checksum. If anything fails, nothing is left
// behind, and the error is body's own (errors.Is sees through it) unless the
// write to the disk failed first.
func (d *Dir) Write(ctx context.Context, level int, hdr ltx.Header, body func(*ltx.Encoder) error) (*ltx.FileInfo, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := func() error {
			// The encoder writes a page at a time; the pipe hands each
			// write to the staging goroutine, so gather them.
			bw := stageBuffers.Get().(*bufio.Writer)
			bw.Reset(pw)
			defer func() { bw.Reset(nil); stageBuffers.Put(bw) }()
			enc, err := ltx.NewEncoder(bw)
			if err != nil {
				return err
			}
			// The page index of a large copy goes to disk past
			// spillPages entries: memory does not grow with the database.
			enc.SetSpillDir(d.path)
			enc.SetSpillThreshold(spillPages)
			defer enc.Cleanup()
			if err := enc.EncodeHeader(hdr); err != nil {
				return err
			}
			if err := body(enc); err != nil {
				return err
			}
			if err := enc.Close(); err != nil {
				return err
			}
			return bw.Flush()
		}()
		pw.CloseWithError(err)
		done <- err
	}()
	info, werr := d.WriteLTXFile(ctx, level, hdr.MinTXID, hdr.MaxTXID, pr, time.UnixMilli(hdr.Timestamp))
	pr.CloseWithError(errWriteEnded)
	encErr := <-done
	if werr != nil || encErr != nil {
		// A file renamed into place before a later step failed (the
		// directory fsync, say) is not part of the history: remove it so
		// nothing uploads it, since the TXID will be written again.
		d.DeleteLTXFiles(context.WithoutCancel(ctx), []*ltx.FileInfo{{Level: level, MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID}})
	}
	name := storage.Describe(level, hdr.MinTXID, hdr.MaxTXID)
	switch {
	case encErr != nil && !errors.Is(encErr, errWriteEnded):
		// The body or the encoder failed; the write only saw its pipe
		// close with that error.
		return nil, fmt.Errorf("stage %s: %w", name, encErr)
	case werr != nil:
		// The write's error names the staging path and the cause (a full
		// disk, say); the encoder then only saw its pipe close.
		return nil, fmt.Errorf("stage %s in %s: %w", name, d.path, werr)
	case encErr != nil:
		return nil, fmt.Errorf("stage %s: %w", name, encErr)
	}
	return info, nil
}

// stageBuffers holds the buffers that gather an encoder's writes. A sync
// stages a file of a few pages, many times a second across a process's
// databases; a new 256 KiB buffer for each was a fifth of a replicator's
// garbage, and collecting it a large part of its CPU with many databases.
var stageBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 256<<10) }}

// errWriteEnded is what an encoder writes into once the write to the disk
// has stopped.
var errWriteEnded = errors.New("staging write ended")

// Merge writes the staged files inputs, which form one chain at one page
// size, to w as one LTX file. It streams: it holds a few pages per input,
// whatever the files' sizes, and spills its page index to the directory.
func (d *Dir) Merge(ctx context.Context, inputs []*ltx.FileInfo, w io.Writer) error {
	rdrs := make([]io.Reader, len(inputs))
	for i, f := range inputs {
		rc, err := d.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, 0, 0)
		if err != nil {
			return err
		}
		defer rc.Close()
		rdrs[i] = rc
	}
	c, err := ltx.NewCompactor(w, rdrs)
	if err != nil {
		return err
	}
	c.SetSpillDir(d.path)
	c.SetSpillThreshold(spillPages)
	defer c.Cleanup()
	return c.Compact(ctx)
}
