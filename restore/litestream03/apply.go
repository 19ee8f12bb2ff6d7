package litestream03

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/walship/walship/internal/wal"
	"github.com/walship/walship/storage"
)

// Result describes a finished restore.
type Result struct {
	Generation string `json:"generation"`
	Snapshot   string `json:"snapshot"` // the snapshot's object
	// Index and Offset are where the restored state ends in the WAL: the
	// end of the last transaction applied (Offset 0: the snapshot alone).
	Index  int   `json:"index"`
	Offset int64 `json:"offset"`
	// Time is when the newest object applied was written.
	Time     time.Time `json:"time"`
	Objects  int       `json:"objects"` // objects read
	Bytes    int64     `json:"bytes"`   // their size, compressed
	PageSize uint32    `json:"page_size"`
	Pages    uint32    `json:"pages"`
	// Skipped says which snapshots the restore went around, and why.
	Skipped []string `json:"skipped,omitempty"`
}

// An ObjectError is a restore that failed on one object of its plan.
type ObjectError struct {
	Replica string
	Name    string // the object
	// Damaged is true when the object's content is wrong, false when it
	// could not be read (the store, the network or the local disk failed).
	Damaged bool
	Err     error
	Fix     string // what to do, when there is something
}

func (e *ObjectError) Error() string {
	msg := fmt.Sprintf("replica %s: %s: %v", e.Replica, e.Name, e.Err)
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

func (e *ObjectError) Unwrap() error { return e.Err }

// AheadError is a snapshot that holds a change the WAL makes only after
// the state restored: Litestream v0.3 copied the database file while
// SQLite's checkpoints were writing to it, so the snapshot is not the state
// at the start of its WAL index, and the WAL before the change cannot be
// laid over it.
type AheadError struct {
	Replica  string
	Snapshot string // the snapshot's object
	Segment  string // the segment that holds the frame
	Pgno     uint32
}

func (e *AheadError) Error() string {
	return fmt.Sprintf("replica %s: %s already holds page %d as %s, written after the state restored, leaves it: the snapshot was copied while SQLite's checkpoint wrote later changes into the database, and the WAL up to the target, laid over it, would give a database that never was",
		e.Replica, e.Snapshot, e.Pgno, e.Segment)
}

// Restore restores the state b holds at target (the zero time for the
// latest) into f, an empty file, and returns where it ends. scratch creates
// a temporary file for one WAL index at a time, which Restore removes.
//
// When the snapshot the plan starts from is damaged, or cannot be proved
// to hold none of the changes the WAL makes after the state restored (see
// AheadError: the WAL segments of the snapshot's own index written after
// the target are read to check this), Restore starts again from an older
// snapshot of the same generation, which reaches the same state; Result
// says what it went around. It never settles for another state. A segment
// that is missing or damaged is an error: nothing else holds its
// transactions.
func (b *Backup) Restore(ctx context.Context, src Source, target time.Time, f *os.File, scratch func() (*os.File, error)) (*Result, error) {
	p, err := b.Plan(target)
	if err != nil {
		return nil, err
	}
	var skipped []string
	for {
		res, err := p.Apply(ctx, src, f, scratch)
		if err == nil {
			res.Skipped = skipped
			return res, nil
		}
		if !goAround(p, err) {
			return nil, err
		}
		older, perr := p.Older(b)
		if errors.Is(perr, errNoOlder) {
			return nil, fmt.Errorf("%w; generation %s holds no older snapshot to restore the same state from", err, p.Generation)
		} else if perr != nil {
			return nil, fmt.Errorf("%w; nor can an older snapshot restore the same state: %w", err, perr)
		}
		skipped = append(skipped, err.Error())
		if err := f.Truncate(0); err != nil {
			return nil, err
		}
		p = older
	}
}

// goAround reports whether a failure of p is one an older snapshot avoids:
// the snapshot is damaged, or holds changes past the target.
func goAround(p *Plan, err error) bool {
	var ahead *AheadError
	var oe *ObjectError
	return errors.As(err, &ahead) || errors.As(err, &oe) && oe.Damaged && oe.Name == p.Snapshot.Object.Name
}

// Apply writes the state p reaches into f, an empty file: the snapshot,
// then the committed transactions of each WAL index in turn. See Restore.
func (p *Plan) Apply(ctx context.Context, src Source, f *os.File, scratch func() (*os.File, error)) (*Result, error) {
	a := &applier{plan: p, src: src, f: f, scratch: scratch, res: &Result{Generation: p.Generation, Snapshot: p.Snapshot.Object.Name, Index: p.Snapshot.Index, Time: p.Snapshot.Object.ModTime}}
	if err := a.snapshot(ctx); err != nil {
		return nil, err
	}
	segs := p.Segments
	first := true
	for len(segs) > 0 || first {
		index := p.Snapshot.Index
		if len(segs) > 0 {
			index = segs[0].Index
		}
		n := 0
		for n < len(segs) && segs[n].Index == index {
			n++
		}
		var window []Segment
		if first {
			window = p.Window
		}
		if n > 0 || len(window) > 0 {
			if err := a.walIndex(ctx, index, append(slices.Clip(segs[:n]), window...), n, first); err != nil {
				return nil, err
			}
		}
		segs, first = segs[n:], false
	}
	a.res.PageSize, a.res.Pages = a.pageSize, a.pages
	return a.res, nil
}

// applier applies one plan.
type applier struct {
	plan     *Plan
	src      Source
	f        *os.File
	scratch  func() (*os.File, error)
	pageSize uint32
	pages    uint32 // the database's size, in pages
	res      *Result
}

// open opens one object of the plan, counting what is read of it.
func (a *applier) open(ctx context.Context, o storage.ObjectInfo) (*object, error) {
	rc, err := a.src.OpenObject(ctx, o.Name)
	if err != nil {
		return nil, err // it names the replica and the object
	}
	a.res.Objects++
	a.res.Bytes += o.Size
	obj := &object{rc: rc, src: &storage.SourceReader{R: storage.ContextReader(ctx, rc)}}
	return obj, nil
}

// object is one object being read.
type object struct {
	rc  io.ReadCloser
	src *storage.SourceReader // remembers a failed read of the store
}

// fail classifies err, which reading the object o ended with: a read that
// failed, or content that is wrong.
func (a *applier) fail(obj *object, o storage.ObjectInfo, err error, fix string) error {
	var de diskError
	switch {
	case errors.As(err, &de):
		return fmt.Errorf("restore %s: %w", o.Name, de.err)
	case obj != nil && obj.src.Err != nil:
		return fmt.Errorf("replica %s: read %s: %w", a.plan.Replica, o.Name, obj.src.Err)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return &ObjectError{Replica: a.plan.Replica, Name: o.Name, Damaged: true, Err: err, Fix: fix}
}

// diskError is a write to the restored database or the scratch file that
// failed: neither the object's nor the store's fault.
type diskError struct{ err error }

func (e diskError) Error() string { return e.err.Error() }

// snapshot writes the plan's snapshot into the file.
func (a *applier) snapshot(ctx context.Context) error {
	s := a.plan.Snapshot
	fix := fmt.Sprintf("restore a time before it was written (%s) with -timestamp", stamp(s.Object.ModTime))
	obj, err := a.open(ctx, s.Object)
	if err != nil {
		return err
	}
	defer obj.rc.Close()
	zr, err := decompress(obj.src)
	if err != nil {
		return a.fail(obj, s.Object, err, fix)
	}
	hdr := make([]byte, dbHeaderSize)
	if n, err := io.ReadFull(zr, hdr); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("it decompresses to %d bytes, less than a database's header", n)
		}
		return a.fail(obj, s.Object, err, fix)
	}
	ps, err := parseDBHeader(hdr)
	if err != nil {
		return a.fail(obj, s.Object, err, fix)
	}
	if _, err := a.f.WriteAt(hdr, 0); err != nil {
		return diskError{err}
	}
	size := int64(dbHeaderSize)
	buf := make([]byte, copyBuffer)
	for {
		n, err := zr.Read(buf)
		if n > 0 {
			if _, err := a.f.WriteAt(buf[:n], size); err != nil {
				return diskError{err}
			}
			size += int64(n)
		}
		if err == io.EOF {
			break
		} else if err != nil {
			return a.fail(obj, s.Object, err, fix)
		}
	}
	if size%int64(ps) != 0 {
		return a.fail(obj, s.Object, fmt.Errorf("it decompresses to %d bytes, not a whole number of %d-byte pages", size, ps), fix)
	}
	a.pageSize, a.pages = ps, uint32(size/int64(ps))
	return nil
}

// copyBuffer is how much of a snapshot is decompressed at a time.
const copyBuffer = 1 << 20

// dbHeaderSize is the size of a SQLite database's header.
const dbHeaderSize = 100

// parseDBHeader checks the header of a SQLite database file and returns its
// page size.
func parseDBHeader(b []byte) (uint32, error) {
	if !bytes.HasPrefix(b, []byte("SQLite format 3\x00")) {
		return 0, errors.New("it is not a SQLite database (its header does not start with \"SQLite format 3\")")
	}
	ps := uint32(binary.BigEndian.Uint16(b[16:]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps > 65536 || ps&(ps-1) != 0 {
		return 0, fmt.Errorf("its header gives an invalid page size, %d", ps)
	}
	return ps, nil
}

// walIndex reads the segments of one WAL index into a scratch file,
// checking them, and applies the transactions committed in the first n of
// them. With check (the snapshot's own index), it then checks that the
// snapshot holds none of the changes that the index's later committed
// frames make (see AheadError), as far as the segments after the first n
// verify: one that does not ends the check, not the restore, as it holds
// nothing of the state restored.
func (a *applier) walIndex(ctx context.Context, index int, segs []Segment, n int, check bool) error {
	tmp, err := a.scratch()
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	w := &walStream{pageSize: a.pageSize, out: tmp}
	applied := 0 // frames of the first n segments
	var ends []int
	for i, s := range segs {
		good := len(w.frames)
		if err := a.segment(ctx, w, s, segs, i); err != nil {
			var oe *ObjectError
			if i >= n && errors.As(err, &oe) && oe.Damaged {
				segs, w.frames = segs[:i], w.frames[:good]
				break
			}
			return err
		}
		ends = append(ends, len(w.frames))
		if i < n {
			applied = len(w.frames)
		}
	}
	last := lastCommit(w.frames[:applied])
	if last >= 0 {
		if err := a.checkpoint(w, tmp, last); err != nil {
			return err
		}
		k, _ := slices.BinarySearch(ends, last+1)
		a.res.Index, a.res.Offset, a.res.Time = index, w.frameOffset(last+1), segs[k].Object.ModTime
	}
	if check {
		return a.checkAhead(w, tmp, last, segs, ends)
	}
	return nil
}

// segment reads segment i of segs, which must start where the WAL index
// read so far ends.
func (a *applier) segment(ctx context.Context, w *walStream, s Segment, segs []Segment, i int) error {
	fix := fmt.Sprintf("nothing else holds its transactions: restore a time before it was written (%s) with -timestamp", stamp(s.Object.ModTime))
	if s.Offset != w.off {
		if s.Offset > w.off {
			prev := SnapshotName(a.plan.Generation, a.plan.Snapshot.Index)
			if i > 0 {
				prev = segs[i-1].Object.Name
			}
			return &ObjectError{Replica: a.plan.Replica, Name: s.Object.Name, Damaged: true,
				Err: fmt.Errorf("WAL index %08x is missing bytes %d to %d, between the end of %s and this segment: the segment that held them is gone", s.Index, w.off, s.Offset-1, prev),
				Fix: fmt.Sprintf("the backup reaches no further than %s: restore a time before this segment was written (%s) with -timestamp", prev, stamp(s.Object.ModTime))}
		}
		return &ObjectError{Replica: a.plan.Replica, Name: s.Object.Name, Damaged: true,
			Err: fmt.Errorf("it starts at offset %d of WAL index %08x, inside %s, which ends at offset %d", s.Offset, s.Index, segs[i-1].Object.Name, w.off), Fix: fix}
	}
	obj, err := a.open(ctx, s.Object)
	if err != nil {
		return err
	}
	defer obj.rc.Close()
	zr, err := decompress(obj.src)
	if err == nil {
		err = w.segment(zr)
	}
	if err != nil {
		return a.fail(obj, s.Object, err, fix)
	}
	return nil
}

// lastCommit returns the index of the last commit frame of frames, or -1.
func lastCommit(frames []frame) int {
	for i := len(frames) - 1; i >= 0; i-- {
		if frames[i].commit != 0 {
			return i
		}
	}
	return -1
}

// checkpoint writes frames 0 to last (a commit frame) of the WAL index in
// tmp to the database, as SQLite's checkpoint does: the newest version of
// each page, then the file cut to the database's size after the commit.
func (a *applier) checkpoint(w *walStream, tmp *os.File, last int) error {
	newest := map[uint32]int{}
	for i, fr := range w.frames[:last+1] {
		newest[fr.pgno] = i
	}
	pgnos := make([]uint32, 0, len(newest))
	for pgno := range newest {
		pgnos = append(pgnos, pgno)
	}
	slices.Sort(pgnos)
	page := make([]byte, a.pageSize)
	for _, pgno := range pgnos {
		if _, err := tmp.ReadAt(page, w.frameOffset(newest[pgno])+wal.FrameHeaderSize); err != nil {
			return diskError{fmt.Errorf("read back %s: %w", tmp.Name(), err)}
		}
		if _, err := a.f.WriteAt(page, int64(pgno-1)*int64(a.pageSize)); err != nil {
			return diskError{err}
		}
	}
	a.pages = w.frames[last].commit
	if err := a.f.Truncate(int64(a.pages) * int64(a.pageSize)); err != nil {
		return diskError{err}
	}
	return nil
}

// checkAhead checks, after frames 0 to last of the snapshot's WAL index
// were applied over it (last is -1 when none was), that no page the later
// committed frames of the index change, and the applied ones do not, holds
// in the snapshot the content of one of those later frames: if one does,
// the snapshot was copied from a database that SQLite's checkpoint had
// already brought past the state restored.
func (a *applier) checkAhead(w *walStream, tmp *os.File, last int, segs []Segment, ends []int) error {
	end := lastCommit(w.frames)
	if end <= last {
		return nil
	}
	applied := map[uint32]bool{}
	for _, fr := range w.frames[:last+1] {
		applied[fr.pgno] = true
	}
	later := map[uint32][]int{}
	for i := last + 1; i <= end; i++ {
		if p := w.frames[i].pgno; !applied[p] && p <= a.pages {
			later[p] = append(later[p], i)
		}
	}
	pgnos := make([]uint32, 0, len(later))
	for p := range later {
		pgnos = append(pgnos, p)
	}
	slices.Sort(pgnos)
	have, frame := make([]byte, a.pageSize), make([]byte, a.pageSize)
	for _, p := range pgnos {
		if _, err := a.f.ReadAt(have, int64(p-1)*int64(a.pageSize)); err != nil {
			return diskError{err}
		}
		for _, i := range later[p] {
			if _, err := tmp.ReadAt(frame, w.frameOffset(i)+wal.FrameHeaderSize); err != nil {
				return diskError{fmt.Errorf("read back %s: %w", tmp.Name(), err)}
			}
			if bytes.Equal(have, frame) {
				k, _ := slices.BinarySearch(ends, i+1)
				return &AheadError{Replica: a.plan.Replica, Snapshot: a.plan.Snapshot.Object.Name, Segment: segs[k].Object.Name, Pgno: p}
			}
		}
	}
	return nil
}
