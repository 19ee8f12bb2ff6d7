package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/crc64iso"
	"github.com/walship/walship/storage"
)

// applier applies LTX files in order to a database file and tracks the
// checksum of every page, so each file's claimed pre- and post-apply checksums
// are checked against what was actually written. The checksum it tracks is
// the restored database's whether or not the files before carried any, so a
// chain that goes on with checksums after files without them (walship's
// after Litestream's, when walship took its replica over) is proved again
// from the first file that has them.
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
	progress func(n int) // told of the bytes of each chunk applied; may be nil
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
	h := crc64iso.New()
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
	if errors.Is(err, storage.ErrDamaged) {
		return a.damagedf(fi, "%v", err)
	}
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

// failf formats an error about one file of the plan that could not be
// read or saved: the replica or the disk failed, not the file.
func (a *applier) failf(fi *ltx.FileInfo, format string, args ...any) error {
	return &FileError{Replica: a.client.String(), File: fi, Err: fmt.Errorf(format, args...)}
}

// damagedf formats an error about one file of the plan whose content is
// wrong: it does not decode, does not match its name, or does not give the
// state its checksums promise.
func (a *applier) damagedf(fi *ltx.FileInfo, format string, args ...any) error {
	return &FileError{Replica: a.client.String(), File: fi, Damaged: true, Err: fmt.Errorf(format, args...)}
}

// apply applies one LTX file, read from r, to the database. The file is read
// ahead by another goroutine; its pages are decoded into runs of consecutive
// pages that the page writer checksums and writes while the next ones are
// decoded. Before apply returns, every page is written and the database's
// checksum is checked against the file's trailer.
func (a *applier) apply(ctx context.Context, fi *ltx.FileInfo, r io.Reader, first bool) error {
	fail := func(format string, args ...any) error { return a.damagedf(fi, format, args...) }
	ra := readAhead(ctx, r, a.bufs)
	ra.consumed = a.progress
	defer ra.stop()
	// decodeErr reports an error of the decoder: the cancellation of the
	// restore, a failed read of the replica, or bad data.
	decodeErr := func(format string, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if serr, ok := isSourceError(err); ok {
			return a.failf(fi, "read failed: %w", serr)
		}
		return fail(format, err)
	}
	dec := ltx.NewDecoder(ra)
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return decodeErr("bad header: %v", storage.HeaderError(dec.Header(), err))
	}
	hdr := dec.Header()
	if hdr.MinTXID != fi.MinTXID || hdr.MaxTXID != fi.MaxTXID {
		return fail("its header says TXIDs %s-%s", hdr.MinTXID, hdr.MaxTXID)
	}
	if first {
		if !hdr.IsSnapshot() {
			return fail("the first file of a restore must be a snapshot")
		}
		a.pageSize = hdr.PageSize
	} else {
		if hdr.MinTXID > a.txid+1 {
			return a.failf(fi, "missing TXIDs %s-%s before it", a.txid+1, hdr.MinTXID-1)
		}
		if !hdr.NoChecksum() && hdr.MinTXID == a.txid+1 && hdr.PreApplyChecksum != a.total {
			return fail("its pre-apply checksum %s does not match the state after TXID %s (%s): the chain is broken", hdr.PreApplyChecksum, a.txid, a.total)
		}
	}
	// A file at another page size follows a change of the database's page
	// size: it is a full copy, which replaces the database whole rather
	// than patching pages of the old size. Its pre-apply checksum, checked
	// above, still ties it to the state before.
	rebase, oldPageSize := !first && hdr.PageSize != a.pageSize, a.pageSize
	if rebase {
		a.pageSize, a.commit, a.total = hdr.PageSize, 0, 0
		a.sums.resize(0)
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
	h := crc64iso.New()
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
	var last uint32                  // the previous page of the file
	full := storage.NewFullCopy(hdr) // a rebase must hold every page
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
		if rebase && !full.See(ph.Pgno) {
			return fail("%s; it lacks page %d", notFullCopy(oldPageSize, a.pageSize), full.Missing())
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
	if rebase && !full.Full() {
		return fail("%s; it lacks page %d", notFullCopy(oldPageSize, a.pageSize), full.Missing())
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
	if post := storage.PostApplyChecksum(hdr, dec.Trailer()); post != 0 && post != a.total {
		return fail("the restored state has checksum %s but the file says %s", a.total, post)
	}
	return nil
}

// notFullCopy words why a file whose page size differs from the files'
// before it cannot follow them: only a full copy of the database can.
func notFullCopy(from, to uint32) string {
	return fmt.Sprintf("the page size changes from %d to %d here, so the file must be a full copy of the database, and it is not", from, to)
}
