package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
)

// fetchPattern names the downloaded files beside the copy; a crash leaves
// them, and the next start removes them.
func fetchPattern(out string) string {
	return filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".follow-fetch-*")
}

func removeFetched(out string) {
	names, _ := filepath.Glob(fetchPattern(out))
	for _, n := range names {
		os.Remove(n)
	}
}

// fetched is a chain of LTX files downloaded and proved, not yet applied.
type fetched struct {
	files []string
	state *restore.State // the state after the last file
	// since is the index of the first file at the last file's page size:
	// one at another page size before it is a full copy, which replaces
	// the state whole, so the files before it need not be written.
	since int
}

// toWrite returns the files a commit writes: those since the last change
// of page size.
func (f *fetched) toWrite() []string { return f.files[f.since:] }

func (f *fetched) remove() {
	for _, n := range f.files {
		os.Remove(n)
	}
}

// fetch downloads files, in order, each into a file of its own beside the
// copy, and applies each to the checksums of a copy of st as it arrives
// (restore.State.Apply): a file's header must be its name's, its own
// checksum must match, its pre-apply checksum must be the state's when it
// starts right after it, and its post-apply checksum the state it gives.
// With st nil the chain starts from nothing, with a snapshot. Nothing is
// written to the copy: a file that does not prove is never applied.
func fetch(ctx context.Context, c storage.Client, out string, st *restore.State, files []*ltx.FileInfo) (_ *fetched, err error) {
	var next *restore.State
	if st == nil {
		next = &restore.State{}
	} else {
		next = &restore.State{TXID: st.TXID, PageSize: st.PageSize, Sums: slices.Clone(st.Sums), Checksum: st.Checksum}
	}
	res := &fetched{state: next}
	defer func() {
		if err != nil {
			res.remove()
		}
	}()
	for i, fi := range files {
		size := next.PageSize
		name, err := fetchOne(ctx, c, out, next, fi, st == nil && i == 0)
		if name != "" {
			res.files = append(res.files, name)
		}
		if err != nil {
			return nil, err
		}
		if i > 0 && next.PageSize != size {
			res.since = i
		}
	}
	return res, nil
}

func fetchOne(ctx context.Context, c storage.Client, out string, st *restore.State, fi *ltx.FileInfo, first bool) (string, error) {
	rc, err := c.OpenLTXFile(ctx, fi.Level, fi.MinTXID, fi.MaxTXID, 0, 0)
	if errors.Is(err, storage.ErrDamaged) {
		// An encrypted file whose header does not open: as damaged as
		// one whose pages do not prove, and gone around the same way.
		return "", &restore.FileError{Replica: c.String(), File: fi, Damaged: true, Err: err}
	}
	if err != nil {
		return "", fmt.Errorf("replica %s: %s: %w", c.String(), storage.Describe(fi.Level, fi.MinTXID, fi.MaxTXID), err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(out), filepath.Base(fetchPattern(out)))
	if err != nil {
		return "", fmt.Errorf("download beside the copy: %w", err)
	}
	name := tmp.Name()
	// The file is proved as it is written to the disk: one read of the
	// replica.
	werr := error(nil)
	tee := io.TeeReader(rc, writerFunc(func(p []byte) (int, error) {
		n, err := tmp.Write(p)
		if err != nil && werr == nil {
			werr = err
		}
		return n, err
	}))
	err = st.Apply(ctx, c.String(), fi, tee, first)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return name, fmt.Errorf("download %s beside the copy: %w", storage.Describe(fi.Level, fi.MinTXID, fi.MaxTXID), werr)
	}
	return name, err
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
