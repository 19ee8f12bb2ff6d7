// Package litestream03 reads the backups Litestream v0.3 wrote, so that
// walship restores them: the latest state, or the state at a time.
//
// Litestream v0.3 kept a replica as generations, each a snapshot of the
// database followed by the write-ahead log that SQLite wrote after it, cut
// into LZ4-compressed segments:
//
//	<path>/generations/<generation>/snapshots/<index>.snapshot.lz4
//	<path>/generations/<generation>/wal/<index>_<offset>.wal.lz4
//
// A generation is 16 hex digits; it started whenever Litestream lost track
// of the WAL. Each WAL index is one WAL file of SQLite's (it changes when
// the log restarts), cut into segments at byte offsets; a snapshot taken
// while WAL index N was current is followed by the segments of index N on.
// Every object is dated by its store (a file's modification time, an
// object's last-modified or creation time), which is all there is to go by
// for a point in time: v0.3 has no transaction IDs.
//
// Find lists a backup, Backup.Plan chooses what to read for a target, and
// Backup.Restore writes the database, checking every object as it reads
// it: the snapshot is a SQLite database; the segments of each WAL index
// follow each other without a byte missing; each decompresses whole
// (LZ4's own checksums); the WAL header's checksum, every frame's salts and
// SQLite's cumulative frame checksums verify; and only committed
// transactions are applied, as SQLite's checkpoint applies them. Whatever
// does not check is an error naming the object and what to do; nothing is
// guessed.
package litestream03

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/walship/walship/storage"
)

// Dir is the directory, under a replica's path, of a Litestream v0.3
// backup.
const Dir = "generations/"

// Source is a replica a backup is read from: any storage.Client that
// implements storage.Objects.
type Source interface {
	String() string
	storage.Objects
}

// A Snapshot is a copy of the database, taken while WAL index Index was
// current.
type Snapshot struct {
	Index  int
	Object storage.ObjectInfo
}

// A Segment holds the bytes of WAL index Index from Offset on.
type Segment struct {
	Index  int
	Offset int64
	Object storage.ObjectInfo
}

// A Generation is one history of the database: its snapshots and WAL
// segments, each sorted by index (and offset).
type Generation struct {
	Name      string
	Snapshots []Snapshot
	Segments  []Segment
}

// Span returns the times of the oldest and newest objects of g.
func (g *Generation) Span() (first, last time.Time) {
	see := func(t time.Time) {
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
	}
	for _, s := range g.Snapshots {
		see(s.Object.ModTime)
	}
	for _, s := range g.Segments {
		see(s.Object.ModTime)
	}
	return first, last
}

// A Backup is every generation of a replica, sorted by name.
type Backup struct {
	Replica     string // the replica's description, for messages
	Generations []*Generation
}

// Objects returns how many snapshots and segments b holds.
func (b *Backup) Objects() (snapshots, segments int) {
	for _, g := range b.Generations {
		snapshots += len(g.Snapshots)
		segments += len(g.Segments)
	}
	return snapshots, segments
}

// Find lists the Litestream v0.3 backup of the replica c. It returns nil,
// and no error, when c holds none, or cannot list objects other than LTX
// files (c does not implement storage.Objects).
func Find(ctx context.Context, c storage.Client) (*Backup, error) {
	src, ok := c.(Source)
	if !ok {
		return nil, nil
	}
	objs, err := src.ListObjects(ctx, Dir)
	if err != nil {
		return nil, err // it names the replica
	}
	return NewBackup(src.String(), objs), nil
}

// NewBackup returns the backup the objects listed under a replica's path
// make, or nil when none is a snapshot or a WAL segment. Names that are
// neither (temporary files of interrupted uploads, say) are left out.
func NewBackup(replica string, objs []storage.ObjectInfo) *Backup {
	byName := map[string]*Generation{}
	for _, o := range objs {
		gen, snap, seg, ok := ParseName(o.Name)
		if !ok {
			continue
		}
		g := byName[gen]
		if g == nil {
			g = &Generation{Name: gen}
			byName[gen] = g
		}
		if seg != nil {
			seg.Object = o
			g.Segments = append(g.Segments, *seg)
		} else {
			snap.Object = o
			g.Snapshots = append(g.Snapshots, *snap)
		}
	}
	if len(byName) == 0 {
		return nil
	}
	b := &Backup{Replica: replica}
	for _, g := range byName {
		slices.SortFunc(g.Snapshots, func(x, y Snapshot) int { return cmp.Compare(x.Index, y.Index) })
		slices.SortFunc(g.Segments, func(x, y Segment) int {
			return cmp.Or(cmp.Compare(x.Index, y.Index), cmp.Compare(x.Offset, y.Offset))
		})
		b.Generations = append(b.Generations, g)
	}
	slices.SortFunc(b.Generations, func(x, y *Generation) int { return strings.Compare(x.Name, y.Name) })
	return b
}

// ParseName parses an object's name (relative to the replica's path) as
// Litestream v0.3 writes them: exactly one of snap and seg is set when ok.
func ParseName(name string) (generation string, snap *Snapshot, seg *Segment, ok bool) {
	rest, found := strings.CutPrefix(name, Dir)
	if !found {
		return "", nil, nil, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || !isHex(parts[0], 16, 16) {
		return "", nil, nil, false
	}
	generation = parts[0]
	switch parts[1] {
	case "snapshots":
		idx, found := strings.CutSuffix(parts[2], ".snapshot.lz4")
		index, good := parseHex(idx, 8, 8, maxIndex)
		if !found || !good {
			return "", nil, nil, false
		}
		return generation, &Snapshot{Index: int(index)}, nil, true
	case "wal":
		base, found := strings.CutSuffix(parts[2], ".wal.lz4")
		idx, off, cut := strings.Cut(base, "_")
		index, good := parseHex(idx, 8, 8, maxIndex)
		offset, goodOff := parseHex(off, 8, 16, 1<<62)
		// As Litestream formats them: no leading zero past 8 digits.
		if !found || !cut || !good || !goodOff || len(off) > 8 && off[0] == '0' {
			return "", nil, nil, false
		}
		return generation, nil, &Segment{Index: int(index), Offset: int64(offset)}, true
	}
	return "", nil, nil, false
}

// isHex reports whether s is min to max lower-case hex digits.
func isHex(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// parseHex parses min to max lower-case hex digits as a number up to limit.
func parseHex(s string, min, max int, limit uint64) (uint64, bool) {
	if !isHex(s, min, max) {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 64)
	return v, err == nil && v <= limit
}

// maxIndex is the highest WAL index Litestream v0.3 writes: it starts a new
// generation past it.
const maxIndex = 0x7fffffff

// SnapshotName returns the name of a snapshot's object.
func SnapshotName(generation string, index int) string {
	return fmt.Sprintf("%s%s/snapshots/%08x.snapshot.lz4", Dir, generation, index)
}

// SegmentName returns the name of a WAL segment's object.
func SegmentName(generation string, index int, offset int64) string {
	return fmt.Sprintf("%s%s/wal/%08x_%08x.wal.lz4", Dir, generation, index, offset)
}

// Span returns the times of the oldest and newest objects of b.
func (b *Backup) Span() (first, last time.Time) {
	for _, g := range b.Generations {
		f, l := g.Span()
		if first.IsZero() || f.Before(first) {
			first = f
		}
		if l.After(last) {
			last = l
		}
	}
	return first, last
}

// Summary describes b in a few words, for messages: "1 generation, 3
// snapshots and 120 WAL segments, written from ... to ...".
func (b *Backup) Summary() string {
	snaps, segs := b.Objects()
	first, last := b.Span()
	return fmt.Sprintf("%d %s, %d %s and %d WAL %s, written from %s to %s",
		len(b.Generations), plural(len(b.Generations), "generation"), snaps, plural(snaps, "snapshot"), segs, plural(segs, "segment"),
		first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339))
}

// Explain says, for an operator, what the replica holds and what walship
// does with it.
func (b *Backup) Explain() string {
	return fmt.Sprintf("it holds a backup that Litestream v0.3 wrote (%s: %s): walship restore reads it (its latest state, or the state at a time with -timestamp); walship replicate starts a new walship history beside it and leaves it as it is",
		Dir, b.Summary())
}

func plural(n int, one string) string {
	if n == 1 {
		return one
	}
	return one + "s"
}
