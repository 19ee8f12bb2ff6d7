package restore

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/crc64iso"
	"github.com/walship/walship/internal/fsutil"
)

// Writes: the decoder decodes each page straight into a run, a buffer of
// consecutive pages; a full run, or one that the next page does not continue,
// is handed to the writer's goroutine, which checksums its pages, writes it
// with one call and starts its writeback to the disk (so the final fsync has
// little left to do). runBuffers runs of runBytes are allocated once per
// restore: the decoder fills one while the writer writes the others.
const (
	runBytes   = 256 << 10
	runBuffers = 4
)

// run is a buffer of consecutive pages, from pgno.
type run struct {
	pgno     uint32
	n        int
	pageSize int
	buf      []byte

	// sums, when not nil, holds the checksum of every page of the database:
	// the writer replaces those of the run's pages with the checksums of
	// their new content. A zero checksum of a page up to oldCommit (other
	// than the lock page, whose checksum is zero) is not known yet: the
	// writer reads the page's old content from the file to compute it.
	sums      *pageSums
	oldCommit uint32
	lock      uint32
}

// pageWriter writes pages to the restored database from its own goroutine.
// next, add, flush and close are called from one goroutine.
type pageWriter struct {
	f         *os.File
	raw       syscall.RawConn // f's, for starting writeback
	pageSize  int
	sums      *pageSums // given to each run: see run.sums
	oldCommit uint32
	old       []byte // the old content of a run's pages, read when needed

	free    chan *run
	work    chan *run
	exited  chan struct{}
	pending sync.WaitGroup // runs handed to the writer, not yet written
	cur     *run           // the run being filled

	mu     sync.Mutex
	err    error        // the first write error, or errAborted after close
	acc    ltx.Checksum // XOR of the old and new checksums of the pages written since flush
	writes int          // runs written
}

// errAborted makes the writer drop the runs not yet written once it is
// closed.
var errAborted = errors.New("the restore was abandoned")

func newPageWriter(f *os.File) *pageWriter {
	w := &pageWriter{
		f:      f,
		free:   make(chan *run, runBuffers),
		work:   make(chan *run, runBuffers),
		exited: make(chan struct{}),
	}
	w.raw, _ = f.SyscallConn()
	for range runBuffers {
		w.free <- &run{buf: make([]byte, runBytes)}
	}
	go w.loop()
	return w
}

// begin prepares the writer for the pages of one file, of pageSize bytes,
// applied to a database of oldCommit pages whose checksums are kept in sums
// (nil: not kept; see run.sums). The previous file's pages must have been
// flushed.
func (w *pageWriter) begin(pageSize uint32, sums *pageSums, oldCommit uint32) {
	w.pageSize = int(pageSize)
	w.sums, w.oldCommit = sums, oldCommit
}

func (w *pageWriter) loop() {
	defer close(w.exited)
	h := crc64iso.New()
	for r := range w.work {
		w.mu.Lock()
		skip := w.err != nil
		w.mu.Unlock()
		if !skip {
			err := w.write(r, h)
			w.mu.Lock()
			if err != nil && w.err == nil {
				w.err = err
			}
			w.writes++
			w.mu.Unlock()
		}
		r.n = 0
		r.sums = nil
		w.free <- r // free holds every run: never blocks
		w.pending.Done()
	}
}

// write checksums and writes one run.
func (w *pageWriter) write(r *run, h hash.Hash64) error {
	ps := r.pageSize
	data := r.buf[:r.n*ps]
	off := int64(r.pgno-1) * int64(ps)
	if r.sums != nil {
		var acc ltx.Checksum
		var old []byte // the run's pages before this write, once read
		for i := range r.n {
			pgno := r.pgno + uint32(i)
			prev := r.sums.get(pgno)
			if prev == 0 && pgno <= r.oldCommit && pgno != r.lock {
				if old == nil {
					var err error
					if old, err = w.readOld(off, len(data)); err != nil {
						return fmt.Errorf("read restored pages %d-%d: %w", r.pgno, r.pgno+uint32(r.n)-1, err)
					}
				}
				prev = ltx.ChecksumPageWithHasher(h, pgno, old[i*ps:(i+1)*ps])
			}
			c := ltx.ChecksumPageWithHasher(h, pgno, data[i*ps:(i+1)*ps])
			acc ^= prev ^ c
			r.sums.set(pgno, c)
		}
		w.mu.Lock()
		w.acc ^= acc
		w.mu.Unlock()
	}
	if _, err := w.f.WriteAt(data, off); err != nil {
		return fmt.Errorf("write restored pages %d-%d: %w", r.pgno, r.pgno+uint32(r.n)-1, diskHint(err))
	}
	fsutil.StartWriteback(w.raw, off, int64(len(data)))
	return nil
}

// readOld reads n bytes of the file from off into the writer's scratch
// buffer; what lies past the end of the file reads as zeros.
func (w *pageWriter) readOld(off int64, n int) ([]byte, error) {
	if w.old == nil {
		w.old = make([]byte, runBytes)
	}
	return readPages(w.f, w.old[:n], off)
}

// readPages fills b from f at off; what lies past the end of the file reads
// as zeros, as SQLite reads it.
func readPages(f *os.File, b []byte, off int64) ([]byte, error) {
	n, err := f.ReadAt(b, off)
	if err == io.EOF {
		clear(b[n:])
		err = nil
	}
	return b, err
}

// failed returns the first write error.
func (w *pageWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// next returns the buffer that the next page is to be decoded into; add
// then says which page it holds.
func (w *pageWriter) next() ([]byte, error) {
	if err := w.failed(); err != nil {
		return nil, err
	}
	if w.cur == nil {
		w.cur = <-w.free
	}
	off := w.cur.n * w.pageSize
	return w.cur.buf[off : off+w.pageSize], nil
}

// add records that the buffer next returned holds page pgno.
func (w *pageWriter) add(pgno uint32) {
	r := w.cur
	ps := w.pageSize
	if r.n > 0 && pgno != r.pgno+uint32(r.n) {
		// A gap: the page starts a new run.
		nr := <-w.free
		copy(nr.buf[:ps], r.buf[r.n*ps:(r.n+1)*ps])
		w.submit(r)
		w.cur, r = nr, nr
	}
	if r.n == 0 {
		r.pgno = pgno
	}
	r.n++
	if (r.n+1)*ps > len(r.buf) {
		w.submit(r)
		w.cur = nil
	}
}

func (w *pageWriter) submit(r *run) {
	r.sums, r.pageSize = w.sums, w.pageSize
	r.oldCommit, r.lock = w.oldCommit, ltx.LockPgno(uint32(w.pageSize))
	w.pending.Add(1)
	w.work <- r
}

// flush writes the pages added so far and waits until they are written. It
// returns the XOR of the old and new checksums of the pages written since
// the last flush (when the checksums are kept) and the first write error.
func (w *pageWriter) flush() (ltx.Checksum, error) {
	if w.cur != nil && w.cur.n > 0 {
		w.submit(w.cur)
		w.cur = nil
	}
	w.pending.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	acc, err := w.acc, w.err
	w.acc = 0
	return acc, err
}

// close stops the writer; unless the pages were flushed, those not yet
// written are dropped. It returns once the goroutine no longer uses the
// file.
func (w *pageWriter) close() {
	w.mu.Lock()
	if w.err == nil {
		w.err = errAborted
	}
	w.mu.Unlock()
	close(w.work)
	<-w.exited
}
