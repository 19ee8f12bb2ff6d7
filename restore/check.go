package restore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/walship/walship/storage"
)

// CheckChain checks, from the files' headers and trailers alone, what Apply
// checks of a chain before and between the files: the first is a snapshot;
// each header names the file's TXIDs and is valid; each later file leaves
// no TXID out, and has the page size of the file before it unless it is a
// full copy of the database (which walship writes when the page size
// changes: full(i) reports whether files[i] holds every page); and, while
// every file so far carries checksums, a file that starts right after the
// previous one has that one's post-apply checksum as its pre-apply
// checksum. headers[i] and trailers[i] are those of files[i]; a broken
// chain is a *ChainError. What only the pages can show (a corrupt page, a
// post-apply checksum the pages do not add up to) is left to Apply, or to
// reading every file whole (walship verify).
//
// Files written by Litestream carry no checksums (ltx.HeaderFlagNoChecksum):
// a file that follows one is compared by TXIDs only, since only applying
// the pages shows the state it ends with; from the next file that says the
// state it ends with (storage.PostApplyChecksum) on, checksums are compared
// again.
func CheckChain(files []*ltx.FileInfo, headers []ltx.Header, trailers []ltx.Trailer, full func(i int) bool) error {
	if len(headers) != len(files) || len(trailers) != len(files) {
		return fmt.Errorf("check chain: %d files, %d headers and %d trailers", len(files), len(headers), len(trailers))
	}
	var pageSize uint32
	var txid ltx.TXID
	var post ltx.Checksum // the state after the previous file; zero if it does not say
	for i, f := range files {
		hdr := headers[i]
		fail := func(format string, args ...any) error {
			return &ChainError{File: f, Reason: fmt.Sprintf(format, args...)}
		}
		if hdr.MinTXID != f.MinTXID || hdr.MaxTXID != f.MaxTXID {
			return fail("its header says TXIDs %s-%s", hdr.MinTXID, hdr.MaxTXID)
		}
		if err := hdr.Validate(); err != nil {
			return fail("bad header: %v", storage.HeaderError(hdr, err))
		}
		if i == 0 {
			if !hdr.IsSnapshot() {
				return fail("the first file of a restore must be a snapshot")
			}
			pageSize = hdr.PageSize
		} else {
			if hdr.PageSize != pageSize && !full(i) {
				return fail("%s", notFullCopy(pageSize, hdr.PageSize))
			}
			pageSize = hdr.PageSize
			if hdr.MinTXID > txid+1 {
				return fail("missing TXIDs %s-%s before it", txid+1, hdr.MinTXID-1)
			}
			if !hdr.NoChecksum() && post != 0 && hdr.MinTXID == txid+1 && hdr.PreApplyChecksum != post {
				return fail("its pre-apply checksum %s does not match the state after TXID %s (%s): the chain is broken", hdr.PreApplyChecksum, txid, post)
			}
		}
		txid, post = hdr.MaxTXID, storage.PostApplyChecksum(hdr, trailers[i])
	}
	return nil
}

// A ChainError is a file that does not follow the files before it in a
// chain, and why.
type ChainError struct {
	File   *ltx.FileInfo
	Reason string
}

func (e *ChainError) Error() string {
	return storage.Describe(e.File.Level, e.File.MinTXID, e.File.MaxTXID) + ": " + e.Reason
}

// Check reads the header and trailer of every file of the plan, two ranged
// reads each and up to parallelism files at once, and checks the chain as
// CheckChain does: what a dry run can prove without downloading the files.
func (p *Plan) Check(ctx context.Context, c storage.Reader, parallelism int) error {
	if parallelism < 1 {
		parallelism = DefaultParallelism
	}
	headers := make([]ltx.Header, len(p.Files))
	trailers := make([]ltx.Trailer, len(p.Files))
	errs := make([]error, len(p.Files))
	var g errgroup.Group
	g.SetLimit(parallelism)
	for i, f := range p.Files {
		g.Go(func() error {
			headers[i], trailers[i], errs[i] = storage.ReadHeaderTrailer(ctx, c, f)
			return nil
		})
	}
	g.Wait()
	// Where the page size changes, the file must be a full copy: its page
	// index says.
	full := make([]bool, len(p.Files))
	if !slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
		for i := 1; i < len(p.Files); i++ {
			if headers[i].PageSize != headers[i-1].PageSize {
				full[i], errs[i] = storage.IsFullCopy(ctx, c, p.Files[i], headers[i])
			}
		}
	}
	// The first problem in plan order, whichever read finished first.
	for i, err := range errs {
		if errors.Is(err, storage.ErrDamaged) {
			return &FileError{Replica: c.String(), File: p.Files[i], Damaged: true, Err: err}
		}
		if err != nil {
			return err // it names the replica and the file
		}
	}
	if err := CheckChain(p.Files, headers, trailers, func(i int) bool { return full[i] }); err != nil {
		var ce *ChainError
		if errors.As(err, &ce) {
			return &FileError{Replica: c.String(), File: ce.File, Damaged: true, Err: errors.New(ce.Reason)}
		}
		return fmt.Errorf("replica %s: %w; a restore of this plan would fail", c, err)
	}
	return nil
}
