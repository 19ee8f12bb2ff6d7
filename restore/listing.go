package restore

import (
	"cmp"
	"context"
	"slices"
	"sort"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// Lister is what planning reads of a replica: its description, for
// messages, and the files of each level.
type Lister interface {
	String() string
	LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error)
}

// A Listing is every LTX file of a replica, level by level, as listed once.
// Planning from it does no I/O, so a caller that plans many restores (walship
// verify plans one to every restore point) lists the replica once.
type Listing struct {
	replica string // the replica's description, for messages
	levels  [storage.MaxLevel + 1][]*ltx.FileInfo
	// reach[level][i] is the highest MaxTXID of levels[level][:i+1]: where
	// the search for a file that continues a chain may stop.
	reach  [storage.MaxLevel + 1][]ltx.TXID
	newest ltx.TXID
	n      int
}

// List lists every level of c once.
func List(ctx context.Context, c Lister) (*Listing, error) {
	var files []*ltx.FileInfo
	for level := 0; level <= storage.MaxLevel; level++ {
		fs, err := c.LTXFiles(ctx, level)
		if err != nil {
			return nil, err // it names the replica
		}
		files = append(files, fs...)
	}
	return NewListing(c.String(), files), nil
}

// ByNewest lists each of replicas and returns their indexes by the newest
// TXID each holds, highest first, in the given order among equals (a
// replica holding only a Litestream v0.3 backup holds TXID zero): where a
// database is restored from when it has several replicas, since one that
// was down may be behind. A replica that cannot be listed is an error, a
// *ListError: it may hold the newest state.
func ByNewest(ctx context.Context, replicas []Lister) ([]int, error) {
	newest := make([]ltx.TXID, len(replicas))
	for i, r := range replicas {
		l, err := List(ctx, r)
		if err != nil {
			return nil, &ListError{Index: i, Err: err}
		}
		newest[i] = l.Newest()
	}
	order := make([]int, len(replicas))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(newest[b], newest[a]) })
	return order, nil
}

// ListError is ByNewest's error: replica Index could not be listed.
type ListError struct {
	Index int
	Err   error
}

func (e *ListError) Error() string { return e.Err.Error() }
func (e *ListError) Unwrap() error { return e.Err }

// NewListing returns the listing of files, of any levels and in any order,
// of the replica described by replica (a storage.Client's String).
func NewListing(replica string, files []*ltx.FileInfo) *Listing {
	l := &Listing{replica: replica}
	for _, f := range files {
		if storage.CheckLevel(f.Level) != nil {
			continue
		}
		l.levels[f.Level] = append(l.levels[f.Level], f)
		l.newest = max(l.newest, f.MaxTXID)
		l.n++
	}
	for level, fs := range l.levels {
		// Already in this order as LTXFiles lists them; sorting keeps which
		// of two equally good files a plan takes independent of the backend.
		storage.SortFiles(fs)
		reach := make([]ltx.TXID, len(fs))
		var top ltx.TXID
		for i, f := range fs {
			top = max(top, f.MaxTXID)
			reach[i] = top
		}
		l.reach[level] = reach
	}
	return l
}

// Len returns the number of files listed.
func (l *Listing) Len() int { return l.n }

// Newest returns the highest TXID of any file (zero for an empty listing).
func (l *Listing) Newest() ltx.TXID { return l.newest }

// Files returns the files of one level, sorted by MinTXID then MaxTXID. The
// slice is the listing's own: callers must not change it.
func (l *Listing) Files(level int) []*ltx.FileInfo {
	if storage.CheckLevel(level) != nil {
		return nil
	}
	return l.levels[level]
}

// next returns the file, of any level, that continues a chain which has
// reached cur and reaches furthest among those target allows; nil if none
// does. Between files that reach as far, the one of the higher level wins,
// then the one listed first. With cur zero, only a file starting at TXID 1
// can begin the chain.
func (l *Listing) next(cur ltx.TXID, target Target) *ltx.FileInfo {
	var best *ltx.FileInfo
	for level := storage.MaxLevel; level >= 0; level-- {
		if f := l.nextAt(level, cur, target); f != nil && (best == nil || f.MaxTXID > best.MaxTXID) {
			best = f
		}
	}
	return best
}

// nextAt is next within one level. Files are sorted by MinTXID, so those
// starting at or before cur+1 are a prefix; it is searched from its end, and
// the search stops where no earlier file reaches past cur, which in a level
// without overlapping files is after one or two files.
func (l *Listing) nextAt(level int, cur ltx.TXID, target Target) *ltx.FileInfo {
	fs, reach := l.levels[level], l.reach[level]
	end := sort.Search(len(fs), func(i int) bool { return fs[i].MinTXID > cur+1 })
	var best *ltx.FileInfo
	for i := end - 1; i >= 0 && reach[i] > cur; i-- {
		f := fs[i]
		if f.MaxTXID <= cur || !target.eligible(f) || (cur == 0 && f.MinTXID != 1) {
			continue
		}
		// >=: of two files that reach as far, the one listed first wins.
		if best == nil || f.MaxTXID >= best.MaxTXID {
			best = f
		}
	}
	return best
}
