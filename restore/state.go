package restore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/crc64iso"
	"github.com/walship/walship/storage"
)

// A State is one state of a replica's database as checksums: the checksum
// of every page and the database checksum, which LTX files carry as their
// pre- and post-apply checksums.
type State struct {
	TXID     ltx.TXID
	PageSize uint32
	// Sums[pgno-1] is the checksum of page pgno; zero for the lock page,
	// which no file holds.
	Sums     []ltx.Checksum
	Checksum ltx.Checksum
}

// ReadState reads, from the files of listing l of replica c, the state a
// restore to target would write, without writing anything: it applies
// each file of the plan to the checksum of every page. Files without
// database checksums (Litestream's) are read as a restore reads them,
// checked by their own file checksum, so the state's checksum is the one
// walship can continue their history from; a file that carries checksums
// is checked against them, and a damaged file is gone around as a restore
// goes around it.
//
// It holds eight bytes per page of the database, and reads every file of
// the plan once: as much as one restore downloads.
func ReadState(ctx context.Context, c storage.Client, l *Listing, target Target) (*State, error) {
	plan, err := l.Plan(target)
	if err != nil {
		return nil, err
	}
	var st *State
	_, err = aroundDamaged(l, plan, func(p *Plan) error {
		st = &State{}
		for i, f := range p.Files {
			if err := st.apply(ctx, c, f, i == 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// apply applies one file of the plan to s, as applier.apply applies it to
// a database file: pages the database grows into without a copy in the
// file read as zeros, pages past its size are dropped, and a file at
// another page size (a full copy after the page size changed) replaces
// the state whole.
func (s *State) apply(ctx context.Context, c storage.Client, f *ltx.FileInfo, first bool) error {
	damaged := func(format string, args ...any) error {
		return &FileError{Replica: c.String(), File: f, Damaged: true, Err: fmt.Errorf(format, args...)}
	}
	rc, err := c.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, 0, 0)
	if errors.Is(err, storage.ErrDamaged) {
		return damaged("%v", err)
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	return s.Apply(ctx, c.String(), f, rc, first)
}

// Apply applies file f of replica, read from r, to s, and checks every
// checksum it carries against the state it gives (see ReadState), without
// writing anything: the follower (restore/follow) proves each file this
// way before it writes a page of it. The first file of a state must be a
// snapshot. On an error s is left part way and must not be used.
func (s *State) Apply(ctx context.Context, replica string, f *ltx.FileInfo, r io.Reader, first bool) error {
	damaged := func(format string, args ...any) error {
		return &FileError{Replica: replica, File: f, Damaged: true, Err: fmt.Errorf(format, args...)}
	}
	src := &storage.SourceReader{R: storage.ContextReader(ctx, r)}
	readErr := func(format string, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if src.Err != nil {
			return &FileError{Replica: replica, File: f, Err: fmt.Errorf("read failed: %w", src.Err)}
		}
		return damaged(format, err)
	}
	dec := ltx.NewDecoder(src)
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return readErr("bad header: %v", storage.HeaderError(dec.Header(), err))
	}
	hdr := dec.Header()
	switch {
	case hdr.MinTXID != f.MinTXID || hdr.MaxTXID != f.MaxTXID:
		return damaged("its header says TXIDs %s-%s", hdr.MinTXID, hdr.MaxTXID)
	case first && !hdr.IsSnapshot():
		return damaged("the first file of a restore must be a snapshot")
	case !first && hdr.MinTXID > s.TXID+1:
		return &FileError{Replica: replica, File: f, Err: fmt.Errorf("missing TXIDs %s-%s before it", s.TXID+1, hdr.MinTXID-1)}
	case !first && !hdr.NoChecksum() && hdr.MinTXID == s.TXID+1 && hdr.PreApplyChecksum != s.Checksum:
		return damaged("its pre-apply checksum %s does not match the state after TXID %s (%s): the chain is broken", hdr.PreApplyChecksum, s.TXID, s.Checksum)
	}
	// A file at another page size than the state follows a change of the
	// database's page size: a full copy, which replaces the state whole
	// and must hold every page.
	rebase, oldPageSize := !first && hdr.PageSize != s.PageSize, s.PageSize
	if first || rebase {
		s.PageSize, s.Sums, s.Checksum = hdr.PageSize, nil, 0
	}
	lock := ltx.LockPgno(hdr.PageSize)
	h := crc64iso.New()
	zero := make([]byte, hdr.PageSize)
	data := make([]byte, hdr.PageSize)
	// grow covers n pages: those the database grows into without a copy
	// in the file read as zeros.
	grow := func(n uint32) {
		for pgno := uint32(len(s.Sums)) + 1; pgno <= n; pgno++ {
			var z ltx.Checksum
			if pgno != lock {
				z = ltx.ChecksumPageWithHasher(h, pgno, zero)
			}
			s.Sums = append(s.Sums, z)
			s.Checksum = ltx.ChecksumFlag | (s.Checksum ^ z)
		}
	}
	want := uint32(1) // of a rebase, the next page: it must hold every page
	var last uint32
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, data); err == io.EOF {
			break
		} else if err != nil {
			return readErr("corrupt page data: %v", err)
		}
		switch {
		case ph.Pgno > hdr.Commit:
			return damaged("page %d lies beyond the database size of %d pages", ph.Pgno, hdr.Commit)
		case ph.Pgno <= last:
			return damaged("page %d comes after page %d: the pages of an LTX file ascend (the file is corrupt)", ph.Pgno, last)
		case rebase && ph.Pgno != want:
			return damaged("the page size changes from %d to %d here, so the file must be a full copy of the database, and it lacks page %d", oldPageSize, hdr.PageSize, want)
		}
		if want = ph.Pgno + 1; want == lock {
			want++
		}
		last = ph.Pgno
		grow(ph.Pgno)
		sum := ltx.ChecksumPageWithHasher(h, ph.Pgno, data)
		s.Checksum = ltx.ChecksumFlag | (s.Checksum ^ s.Sums[ph.Pgno-1] ^ sum)
		s.Sums[ph.Pgno-1] = sum
	}
	if err := dec.Close(); err != nil {
		return readErr("%v (the file is truncated or corrupt)", err)
	}
	if rebase && want <= hdr.Commit {
		return damaged("the page size changes from %d to %d here, so the file must be a full copy of the database, and it lacks page %d", oldPageSize, hdr.PageSize, want)
	}
	grow(hdr.Commit)
	for pgno := uint32(len(s.Sums)); pgno > hdr.Commit; pgno-- {
		s.Checksum = ltx.ChecksumFlag | (s.Checksum ^ s.Sums[pgno-1])
	}
	s.Sums = s.Sums[:min(uint32(len(s.Sums)), hdr.Commit)]
	s.TXID = hdr.MaxTXID
	if post := storage.PostApplyChecksum(hdr, dec.Trailer()); post != 0 && post != s.Checksum {
		return damaged("the state it ends with has checksum %s but the file says %s", s.Checksum, post)
	}
	return nil
}
