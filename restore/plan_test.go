package restore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// history is a model of a database, page by page, after each transaction:
// states[txid] (states[0] is the empty database before TXID 1).
type history struct {
	pageSize uint32
	states   []state
	base     time.Time
}

type state struct {
	pages   [][]byte        // the database: len(pages) is its size in pages
	written map[uint32]bool // pages the transaction wrote
	at      time.Time       // when the transaction was written
}

func newHistory(pageSize uint32) *history {
	return &history{
		pageSize: pageSize,
		states:   []state{{written: map[uint32]bool{}}},
		base:     time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

// last returns the newest TXID.
func (h *history) last() ltx.TXID { return ltx.TXID(len(h.states) - 1) }

// txTime is the time of transaction txid: one minute apart.
func (h *history) txTime(txid ltx.TXID) time.Time {
	return h.base.Add(time.Duration(txid) * time.Minute)
}

// tx records a transaction that resizes the database to commit pages and
// writes the given pages with new content. Pages the database grows into that
// the transaction does not write read as zeros.
func (h *history) tx(commit uint32, writes ...uint32) ltx.TXID {
	prev := h.states[len(h.states)-1].pages
	txid := ltx.TXID(len(h.states))
	pages := make([][]byte, commit)
	for i := range pages {
		if i < len(prev) {
			pages[i] = prev[i]
		} else {
			pages[i] = make([]byte, h.pageSize)
		}
	}
	written := map[uint32]bool{}
	for _, pgno := range writes {
		if pgno < 1 || pgno > commit {
			panic(fmt.Sprintf("page %d outside 1-%d", pgno, commit))
		}
		b := make([]byte, h.pageSize)
		for i := range b {
			b[i] = byte(uint32(i)*7 + pgno*13 + uint32(txid)*29)
		}
		copy(b, fmt.Sprintf("page %d txid %d", pgno, txid))
		pages[pgno-1] = b
		written[pgno] = true
	}
	h.states = append(h.states, state{pages: pages, written: written, at: h.txTime(txid)})
	return txid
}

// txImage records a transaction whose result is the database file b (for a
// history taken from a real SQLite database).
func (h *history) txImage(b []byte) ltx.TXID {
	prev := h.states[len(h.states)-1].pages
	txid := ltx.TXID(len(h.states))
	n := len(b) / int(h.pageSize)
	pages := make([][]byte, n)
	written := map[uint32]bool{}
	for i := range pages {
		pages[i] = bytes.Clone(b[i*int(h.pageSize) : (i+1)*int(h.pageSize)])
		if i >= len(prev) || !bytes.Equal(prev[i], pages[i]) {
			written[uint32(i+1)] = true
		}
	}
	h.states = append(h.states, state{pages: pages, written: written, at: h.txTime(txid)})
	return txid
}

func (h *history) commit(txid ltx.TXID) uint32 { return uint32(len(h.states[txid].pages)) }

// bytes returns the database file after txid.
func (h *history) bytes(txid ltx.TXID) []byte {
	return bytes.Join(h.states[txid].pages, nil)
}

// checksum returns the LTX rolling checksum of the database after txid.
func (h *history) checksum(txid ltx.TXID) ltx.Checksum {
	sum := ltx.ChecksumFlag
	lock := ltx.LockPgno(h.pageSize)
	for i, p := range h.states[txid].pages {
		if pgno := uint32(i + 1); pgno != lock {
			sum = ltx.ChecksumFlag | (sum ^ ltx.ChecksumPage(pgno, p))
		}
	}
	return sum
}

// filePages returns the pages an LTX file of TXIDs minTXID-maxTXID holds:
// every page for a snapshot; otherwise the pages written in the range, plus
// those above the smallest size the database had in the range (their old
// content was truncated away), limited to the final size.
func (h *history) filePages(minTXID, maxTXID ltx.TXID) []uint32 {
	commit := h.commit(maxTXID)
	var pgnos []uint32
	if minTXID == 1 {
		for pgno := uint32(1); pgno <= commit; pgno++ {
			pgnos = append(pgnos, pgno)
		}
		return pgnos
	}
	low := commit
	set := map[uint32]bool{}
	for txid := minTXID; txid <= maxTXID; txid++ {
		low = min(low, h.commit(txid))
		for pgno := range h.states[txid].written {
			set[pgno] = true
		}
	}
	for pgno := low + 1; pgno <= commit; pgno++ {
		set[pgno] = true
	}
	for pgno := range set {
		if pgno <= commit && pgno != ltx.LockPgno(h.pageSize) {
			pgnos = append(pgnos, pgno)
		}
	}
	slices.Sort(pgnos)
	return pgnos
}

// fileOpts alter an LTX file from what the history says.
type fileOpts struct {
	pre, post ltx.Checksum // replace the pre-/post-apply checksums
	createdAt time.Time    // replace the timestamp (and file time)
	nameMin   ltx.TXID     // store under another name
	nameMax   ltx.TXID
}

// encode returns the LTX file for TXIDs minTXID-maxTXID.
func (h *history) encode(t testing.TB, minTXID, maxTXID ltx.TXID, o fileOpts) []byte {
	t.Helper()
	ts := h.states[maxTXID].at
	if !o.createdAt.IsZero() {
		ts = o.createdAt
	}
	hdr := ltx.Header{
		Version:   ltx.Version,
		PageSize:  h.pageSize,
		Commit:    h.commit(maxTXID),
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Timestamp: ts.UnixMilli(),
	}
	if minTXID > 1 {
		hdr.PreApplyChecksum = h.checksum(minTXID - 1)
		if o.pre != 0 {
			hdr.PreApplyChecksum = o.pre
		}
	}
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		t.Fatal(err)
	}
	for _, pgno := range h.filePages(minTXID, maxTXID) {
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, h.states[maxTXID].pages[pgno-1]); err != nil {
			t.Fatal(err)
		}
	}
	post := h.checksum(maxTXID)
	if o.post != 0 {
		post = o.post
	}
	enc.SetPostApplyChecksum(post)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// write stores the LTX file for TXIDs minTXID-maxTXID in the replica, with the
// file time set to the timestamp of its last transaction.
func (h *history) write(t testing.TB, c storage.Client, level int, minTXID, maxTXID ltx.TXID, o fileOpts) *ltx.FileInfo {
	t.Helper()
	b := h.encode(t, minTXID, maxTXID, o)
	at := h.states[maxTXID].at
	if !o.createdAt.IsZero() {
		at = o.createdAt
	}
	nameMin, nameMax := minTXID, maxTXID
	if o.nameMin != 0 {
		nameMin, nameMax = o.nameMin, o.nameMax
	}
	info, err := c.WriteLTXFile(context.Background(), level, nameMin, nameMax, bytes.NewReader(b), at)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// fileRef names a file of the replica: level and TXID range.
type fileRef struct {
	level    int
	min, max ltx.TXID
}

func (f fileRef) String() string { return storage.Describe(f.level, f.min, f.max) }

func l0(min, max ltx.TXID) fileRef { return fileRef{0, min, max} }
func l1(min, max ltx.TXID) fileRef { return fileRef{1, min, max} }
func l9(max ltx.TXID) fileRef      { return fileRef{storage.SnapshotLevel, 1, max} }

// l0Each returns one level-0 file for each TXID from min to max.
func l0Each(min, max ltx.TXID) []fileRef {
	var refs []fileRef
	for txid := min; txid <= max; txid++ {
		refs = append(refs, l0(txid, txid))
	}
	return refs
}

func refs(groups ...any) []fileRef {
	var out []fileRef
	for _, g := range groups {
		switch g := g.(type) {
		case fileRef:
			out = append(out, g)
		case []fileRef:
			out = append(out, g...)
		default:
			panic(fmt.Sprintf("refs: %T", g))
		}
	}
	return out
}

// tenTX returns a history of ten transactions over a 512-byte-page database
// that grows and shrinks.
func tenTX() *history {
	h := newHistory(512)
	h.tx(3, 1, 2, 3)         // 1
	h.tx(5, 1, 4, 5)         // 2
	h.tx(5, 2)               // 3
	h.tx(8, 1, 6, 7, 8)      // 4
	h.tx(8, 3, 8)            // 5
	h.tx(4, 1, 2)            // 6: shrinks
	h.tx(6, 1, 5, 6)         // 7: grows again
	h.tx(6, 4)               // 8
	h.tx(9, 1, 7, 8, 9)      // 9
	h.tx(10, 1, 2, 3, 4, 10) // 10
	return h
}

// newReplica returns an empty directory replica.
func newReplica(t testing.TB) *file.Client {
	return file.New(filepath.Join(t.TempDir(), "replica"))
}

func writeAll(t testing.TB, h *history, c storage.Client, files []fileRef) {
	t.Helper()
	for _, f := range files {
		h.write(t, c, f.level, f.min, f.max, fileOpts{})
	}
}

func planRefs(p *restore.Plan) []fileRef {
	var out []fileRef
	for _, f := range p.Files {
		out = append(out, fileRef{f.Level, f.MinTXID, f.MaxTXID})
	}
	return out
}

func TestCalcPlan(t *testing.T) {
	h := tenTX()
	tests := []struct {
		name    string
		files   []fileRef
		target  restore.Target
		want    []fileRef
		wantErr []string // substrings of the error
		errIs   error
	}{
		{
			name:  "latest, level 0 only",
			files: l0Each(1, 10),
			want:  l0Each(1, 10),
		},
		{
			name:  "latest, level 0 ranges",
			files: refs(l0(1, 3), l0(4, 4), l0(5, 8), l0(9, 10)),
			want:  refs(l0(1, 3), l0(4, 4), l0(5, 8), l0(9, 10)),
		},
		{
			name:  "latest, one file",
			files: refs(l0(1, 10)),
			want:  refs(l0(1, 10)),
		},
		{
			name:  "newest snapshot plus later level 0",
			files: refs(l9(4), l9(7), l0Each(1, 10)),
			want:  refs(l9(7), l0Each(8, 10)),
		},
		{
			name:  "snapshot only",
			files: refs(l9(4), l9(10)),
			want:  refs(l9(10)),
		},
		{
			name:  "snapshot at the newest TXID with level 0 files",
			files: refs(l9(10), l0Each(1, 10)),
			want:  refs(l9(10)),
		},
		{
			name:  "snapshot and only the level 0 files after it",
			files: refs(l9(7), l0Each(8, 10)),
			want:  refs(l9(7), l0Each(8, 10)),
		},
		{
			name:   "txid at a snapshot",
			files:  refs(l9(4), l9(7), l0Each(1, 10)),
			target: restore.Target{TXID: 7},
			want:   refs(l9(7)),
		},
		{
			name:   "txid between snapshots",
			files:  refs(l9(4), l9(7), l0Each(1, 10)),
			target: restore.Target{TXID: 6},
			want:   refs(l9(4), l0(5, 5), l0(6, 6)),
		},
		{
			name:   "txid before the first snapshot",
			files:  refs(l9(4), l9(7), l0Each(1, 10)),
			target: restore.Target{TXID: 3},
			want:   l0Each(1, 3),
		},
		{
			name:   "txid 1",
			files:  refs(l9(4), l0Each(1, 10)),
			target: restore.Target{TXID: 1},
			want:   refs(l0(1, 1)),
		},
		{
			name:   "txid in the middle of level 0 ranges",
			files:  refs(l0(1, 3), l0(4, 6), l0(7, 9)),
			target: restore.Target{TXID: 6},
			want:   refs(l0(1, 3), l0(4, 6)),
		},
		{
			name:   "txid equal to the newest",
			files:  refs(l0(1, 3), l0(4, 6), l0(7, 10)),
			target: restore.Target{TXID: 10},
			want:   refs(l0(1, 3), l0(4, 6), l0(7, 10)),
		},
		{
			name:  "the file that reaches furthest, from any level",
			files: refs(l9(4), l1(5, 8), l0Each(1, 10)),
			want:  refs(l9(4), l1(5, 8), l0(9, 9), l0(10, 10)),
		},
		{
			name:  "a lower level reaches further than a higher one",
			files: refs(l9(4), fileRef{2, 5, 6}, l1(5, 8), l0Each(5, 10)),
			want:  refs(l9(4), l1(5, 8), l0(9, 9), l0(10, 10)),
		},
		{
			name:  "the longer of two files at one level",
			files: refs(l1(1, 3), l1(1, 6), l0Each(4, 10)),
			want:  refs(l1(1, 6), l0Each(7, 10)),
		},
		{
			name:   "a compacted file stops at the target",
			files:  refs(l9(4), l1(5, 8), l0Each(1, 10)),
			target: restore.Target{TXID: 7},
			want:   refs(l9(4), l0(5, 5), l0(6, 6), l0(7, 7)),
		},
		{
			name:  "overlapping compacted file",
			files: refs(l9(5), l1(4, 8), l0Each(9, 10)),
			want:  refs(l9(5), l1(4, 8), l0(9, 9), l0(10, 10)),
		},
		{
			name:  "level 1 chain without snapshot",
			files: refs(l1(1, 4), l1(5, 8), l0Each(9, 10)),
			want:  refs(l1(1, 4), l1(5, 8), l0(9, 9), l0(10, 10)),
		},
		{
			name:   "time between transactions",
			files:  l0Each(1, 10),
			target: restore.Target{Timestamp: h.txTime(6).Add(30 * time.Second)},
			want:   l0Each(1, 6),
		},
		{
			name:   "time exactly at a transaction",
			files:  l0Each(1, 10),
			target: restore.Target{Timestamp: h.txTime(6)},
			want:   l0Each(1, 6),
		},
		{
			name:   "time in another zone",
			files:  l0Each(1, 10),
			target: restore.Target{Timestamp: h.txTime(6).In(time.FixedZone("x", -5*3600))},
			want:   l0Each(1, 6),
		},
		{
			name:   "time after the newest",
			files:  refs(l9(7), l0Each(1, 10)),
			target: restore.Target{Timestamp: h.txTime(99)},
			want:   refs(l9(7), l0Each(8, 10)),
		},
		{
			name:   "time uses a snapshot written at or before it",
			files:  refs(l9(4), l9(7), l0Each(1, 10)),
			target: restore.Target{Timestamp: h.txTime(8).Add(time.Second)},
			want:   refs(l9(7), l0(8, 8)),
		},
		{
			name:   "time skips a snapshot written after it",
			files:  refs(l9(4), l9(7), l0Each(1, 10)),
			target: restore.Target{Timestamp: h.txTime(6)},
			want:   refs(l9(4), l0(5, 5), l0(6, 6)),
		},
		{
			name:    "time before the first transaction",
			files:   l0Each(1, 10),
			target:  restore.Target{Timestamp: h.txTime(0)},
			wantErr: []string{"no backup was written at or before", "2024-03-01T12:00:00Z"},
		},
		{
			name:    "gap",
			files:   refs(l0(1, 3), l0(6, 8), l0(9, 10)),
			wantErr: []string{"missing TXIDs 0000000000000004-0000000000000005"},
		},
		{
			name:    "gap of one TXID",
			files:   refs(l0Each(1, 4), l0Each(6, 10)),
			wantErr: []string{"missing TXIDs 0000000000000005-0000000000000005"},
		},
		{
			name:    "gap after a snapshot",
			files:   refs(l9(4), l0Each(7, 10)),
			wantErr: []string{"missing TXIDs 0000000000000005-0000000000000006"},
		},
		{
			name:    "gap before the target",
			files:   refs(l0(1, 3), l0(6, 8), l0(9, 10)),
			target:  restore.Target{TXID: 8},
			wantErr: []string{"missing TXIDs 0000000000000004-0000000000000005", "TXID 0000000000000008"},
		},
		{
			name:    "gap at the end",
			files:   refs(l0(1, 3), l0(10, 10)),
			wantErr: []string{"missing TXIDs 0000000000000004-0000000000000009"},
		},
		{
			name:   "gap after the target",
			files:  refs(l0(1, 3), l0(6, 8)),
			target: restore.Target{TXID: 3},
			want:   refs(l0(1, 3)),
		},
		{
			name:   "gap after the time",
			files:  refs(l0Each(1, 3), l0Each(6, 8)),
			target: restore.Target{Timestamp: h.txTime(4)},
			want:   l0Each(1, 3),
		},
		{
			name:    "gap before the time",
			files:   refs(l0Each(1, 3), l0Each(6, 8)),
			target:  restore.Target{Timestamp: h.txTime(7)},
			wantErr: []string{"missing TXIDs 0000000000000004-0000000000000005"},
		},
		{
			name:    "txid beyond the newest",
			files:   refs(l9(4), l0Each(1, 10)),
			target:  restore.Target{TXID: 11},
			wantErr: []string{"TXID 000000000000000b is not in the backup", "newest TXID is 000000000000000a"},
		},
		{
			name:    "empty replica",
			target:  restore.Target{},
			errIs:   restore.ErrNoFiles,
			wantErr: []string{"no backup"},
		},
		{
			name:   "empty replica, txid target",
			target: restore.Target{TXID: 3},
			errIs:  restore.ErrNoFiles,
		},
		{
			name:    "no file at TXID 1 and no snapshot",
			files:   refs(l0(3, 5), l0(6, 8)),
			wantErr: []string{"no snapshot to start from"},
		},
		{
			name:    "no file at TXID 1 and no snapshot, txid target",
			files:   refs(l0(3, 5), l0(6, 8)),
			target:  restore.Target{TXID: 5},
			wantErr: []string{"no snapshot to start from", "TXID 0000000000000005"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newReplica(t)
			writeAll(t, h, c, tt.files)
			plan, err := restore.CalcPlan(context.Background(), c, tt.target)
			if tt.wantErr != nil || tt.errIs != nil {
				if err == nil {
					t.Fatalf("no error; plan %v", planRefs(plan))
				}
				if tt.errIs != nil && !errors.Is(err, tt.errIs) {
					t.Errorf("error %q is not %v", err, tt.errIs)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				if !strings.Contains(err.Error(), c.String()) {
					t.Errorf("error %q does not name the replica", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := planRefs(plan); !slices.Equal(got, tt.want) {
				t.Fatalf("plan %v; want %v", got, tt.want)
			}
			if plan.TXID() != tt.want[len(tt.want)-1].max {
				t.Errorf("plan.TXID() = %s", plan.TXID())
			}
			var size int64
			for _, f := range tt.want {
				st, err := os.Stat(c.LTXFilePath(f.level, f.min, f.max))
				if err != nil {
					t.Fatal(err)
				}
				size += st.Size()
			}
			if plan.Size() != size {
				t.Errorf("plan.Size() = %d; the files hold %d bytes", plan.Size(), size)
			}
			for _, f := range plan.Files {
				if want := h.states[f.MaxTXID].at; !f.CreatedAt.Equal(want) {
					t.Errorf("%s CreatedAt %s; want %s", fileRef{f.Level, f.MinTXID, f.MaxTXID}, f.CreatedAt, want)
				}
			}
		})
	}
}

func TestCalcPlanMissingReplicaDirectory(t *testing.T) {
	c := file.New(filepath.Join(t.TempDir(), "never", "created"))
	_, err := restore.CalcPlan(context.Background(), c, restore.Target{})
	if !errors.Is(err, restore.ErrNoFiles) {
		t.Fatalf("error %v; want ErrNoFiles", err)
	}
}

func TestCalcPlanCanceled(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, l0Each(1, 3))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := restore.CalcPlan(ctx, c, restore.Target{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v; want context.Canceled", err)
	}
}

func TestTargetString(t *testing.T) {
	for _, tc := range []struct {
		target restore.Target
		want   string
	}{
		{restore.Target{}, "the latest state"},
		{restore.Target{TXID: 26}, "TXID 000000000000001a"},
		{restore.Target{Timestamp: time.Date(2024, 3, 1, 7, 0, 0, 5e8, time.FixedZone("x", -5*3600))}, "time 2024-03-01T12:00:00.5Z"},
	} {
		if got := tc.target.String(); got != tc.want {
			t.Errorf("%+v.String() = %q; want %q", tc.target, got, tc.want)
		}
	}
}

// TestCalcPlanTXIDInsideFile: a TXID that falls inside a file (no file ends
// at it) cannot be restored exactly. The replica misses nothing, so the error
// must not claim TXIDs are missing, nor that no file starts where one does.
func TestCalcPlanTXIDInsideFile(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, refs(l0(1, 4), l0(5, 7), l0(8, 10)))
	_, err := restore.CalcPlan(context.Background(), c, restore.Target{TXID: 6})
	if err == nil {
		t.Fatal("no error restoring a TXID inside a file")
	}
	if !strings.Contains(err.Error(), "TXID 0000000000000006") {
		t.Errorf("error %q does not name the target", err)
	}
	if strings.Contains(err.Error(), "missing TXIDs") || strings.Contains(err.Error(), "no file at any level starts at 0000000000000005") {
		t.Errorf("error %q claims a gap, but 0000000000000005-0000000000000007.ltx is in the replica: TXID 6 lies inside it", err)
	}
}

// TestCalcPlanMissingLevel0File: issue 12: a level-0 file deleted from the
// middle of its level was blamed on the level-1 file that merges its TXIDs.
// Retention, which deletes the oldest level-0 files, leaves no such hole,
// and there the compacted file is the reason.
func TestCalcPlanMissingLevel0File(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, refs(l9(3), l1(4, 8), l0Each(4, 5), l0Each(7, 10)))
	_, err := restore.CalcPlan(context.Background(), c, restore.Target{TXID: 6})
	if err == nil || !strings.Contains(err.Error(), "level 0 is missing TXIDs 0000000000000006-0000000000000006") {
		t.Fatalf("restore of TXID 6 without its level-0 file: %v; want the missing level-0 TXIDs named", err)
	}

	c = newReplica(t)
	writeAll(t, h, c, refs(l9(3), l1(4, 8), l0Each(7, 10)))
	_, err = restore.CalcPlan(context.Background(), c, restore.Target{TXID: 6})
	if err == nil || !strings.Contains(err.Error(), "it lies inside level 1 file 0000000000000004-0000000000000008.ltx") || strings.Contains(err.Error(), "missing") {
		t.Fatalf("restore of TXID 6 after retention: %v; want it said to lie inside the level-1 file", err)
	}
}

// TestCalcPlanTimeWithoutSnapshot: files were written before the target time,
// but none of them can start a restore (the snapshot at or before that time
// was pruned). The error must not claim that nothing was written by then.
func TestCalcPlanTimeWithoutSnapshot(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, refs(l9(7), l0Each(5, 10)))
	target := restore.Target{Timestamp: h.txTime(6)}
	_, err := restore.CalcPlan(context.Background(), c, target)
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), "no backup was written at or before") {
		t.Errorf("error %q is false: level 0 files 5 and 6 were written at or before %s; what is missing is a snapshot to start from", err, target.Timestamp.Format(time.RFC3339))
	}
}
