package restore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
)

// TestRestoreRuns: pages are written as runs of consecutive pages; files
// whose pages have gaps, runs longer than one write, growth into pages no
// file holds (zeros), shrinking, and files after a snapshot that overwrite
// or truncate its pages (whose checksums are only computed then) all restore
// exactly, with every parallelism.
func TestRestoreRuns(t *testing.T) {
	h := newHistory(512)
	all := func(from, to uint32) []uint32 {
		var pgnos []uint32
		for p := from; p <= to; p++ {
			pgnos = append(pgnos, p)
		}
		return pgnos
	}
	h.tx(3000, all(1, 3000)...)                                                             // 1: 1.5 MB, several writes
	h.tx(3000, append(append([]uint32{1, 2, 3, 10, 11}, all(500, 1700)...), 2999, 3000)...) // 2: gaps, and a run longer than a write
	h.tx(4000, 3500, 3501, 4000)                                                            // 3: grows; 3001-3499 and 3502-3999 are zeros
	h.tx(1200, 5, 1199)                                                                     // 4: shrinks
	h.tx(2600, 1201, 2600)                                                                  // 5: grows again over truncated pages
	h.tx(2600, all(1, 2600)...)                                                             // 6: rewrites everything
	last := h.last()
	layouts := []struct {
		name  string
		files []fileRef
	}{
		{"level 0", l0Each(1, last)},
		{"snapshot then level 0", refs(l9(1), l0Each(2, last))},
		{"snapshot then compacted", refs(l9(2), l1(3, 5), l0Each(1, last))},
		{"snapshots only", refs(l9(3), l9(4), l9(6), l0Each(1, last))},
	}
	for i, layout := range layouts {
		t.Run(layout.name, func(t *testing.T) {
			c := newReplica(t)
			writeAll(t, h, c, layout.files)
			ctx := context.Background()
			parallelisms := []int{0}
			if i == 0 {
				parallelisms = []int{1, 0}
			}
			for txid := ltx.TXID(1); txid <= last; txid++ {
				plan, err := restore.CalcPlan(ctx, c, restore.Target{TXID: txid})
				if err != nil {
					continue // not reachable exactly with this layout
				}
				for _, n := range parallelisms {
					_, out := outPath(t)
					res, err := restore.Restore(ctx, c, out, restore.Options{Target: restore.Target{TXID: txid}, IntegrityCheck: "none", Parallelism: n})
					if err != nil {
						t.Fatalf("TXID %s, parallelism %d: %v", txid, n, err)
					}
					checkRestored(t, h, txid, out, res, len(plan.Files))
				}
			}
		})
	}
}

// bigModel is a database of 64 KiB pages too large to hold in memory: a page
// missing from a state's map is zeros.
type bigModel struct {
	states   []bigState // by TXID; states[0] is the empty database
	zeroSums []ltx.Checksum
}

type bigState struct {
	commit  uint32
	pages   map[uint32][]byte
	written []uint32
}

const bigPageSize = 65536

func bigPage(pgno uint32, txid ltx.TXID) []byte {
	b := make([]byte, bigPageSize)
	rand.NewChaCha8([32]byte{byte(pgno), byte(pgno >> 8), byte(pgno >> 16), byte(txid)}).Read(b)
	return b
}

func (m *bigModel) tx(commit uint32, writes ...uint32) {
	prev := m.states[len(m.states)-1]
	txid := ltx.TXID(len(m.states))
	s := bigState{commit: commit, pages: map[uint32][]byte{}, written: writes}
	for pgno, b := range prev.pages {
		if pgno <= commit {
			s.pages[pgno] = b
		}
	}
	for _, pgno := range writes {
		s.pages[pgno] = bigPage(pgno, txid)
	}
	m.states = append(m.states, s)
}

func (m *bigModel) page(txid ltx.TXID, pgno uint32) []byte {
	if b, ok := m.states[txid].pages[pgno]; ok {
		return b
	}
	return make([]byte, bigPageSize)
}

// sums computes the checksum of a zero page at every page number up to n.
// A CRC of messages of one length is affine in the message bits, so the
// checksum of (pgno, zeros) is that of (0, zeros) plus, for each bit set in
// pgno, the difference that bit alone makes: 33 checksums instead of one
// per page. Some are checked against ltx.ChecksumPage.
func (m *bigModel) sums(t *testing.T, n uint32) {
	zero := make([]byte, bigPageSize)
	base := ltx.ChecksumPage(0, zero)
	var bit [32]ltx.Checksum
	for i := range bit {
		bit[i] = ltx.ChecksumPage(1<<i, zero) ^ base
	}
	m.zeroSums = make([]ltx.Checksum, n+1)
	for pgno := uint32(1); pgno <= n; pgno++ {
		c := base
		for i := range bit {
			if pgno&(1<<i) != 0 {
				c ^= bit[i]
			}
		}
		m.zeroSums[pgno] = c
	}
	for _, pgno := range []uint32{1, 3, 1000, n - 1, n} {
		if want := ltx.ChecksumPage(pgno, zero); m.zeroSums[pgno] != want {
			t.Fatalf("checksum of zero page %d: %s; want %s", pgno, m.zeroSums[pgno], want)
		}
	}
}

func (m *bigModel) checksum(txid ltx.TXID) ltx.Checksum {
	s := m.states[txid]
	sum := ltx.ChecksumFlag
	for pgno := uint32(1); pgno <= s.commit; pgno++ {
		if pgno == ltx.LockPgno(bigPageSize) {
			continue
		}
		c := m.zeroSums[pgno]
		if b, ok := s.pages[pgno]; ok {
			c = ltx.ChecksumPage(pgno, b)
		}
		sum = ltx.ChecksumFlag | (sum ^ c)
	}
	return sum
}

// write stores the LTX file for TXIDs minTXID-maxTXID, with the pages the
// history's filePages would hold.
func (m *bigModel) write(t *testing.T, c storage.Client, level int, minTXID, maxTXID ltx.TXID) {
	t.Helper()
	s := m.states[maxTXID]
	lock := ltx.LockPgno(bigPageSize)
	var pgnos []uint32
	if minTXID == 1 {
		for pgno := uint32(1); pgno <= s.commit; pgno++ {
			if pgno != lock {
				pgnos = append(pgnos, pgno)
			}
		}
	} else {
		low := s.commit
		set := map[uint32]bool{}
		for txid := minTXID; txid <= maxTXID; txid++ {
			low = min(low, m.states[txid].commit)
			for _, pgno := range m.states[txid].written {
				set[pgno] = true
			}
		}
		for pgno := uint32(1); pgno <= s.commit; pgno++ {
			if pgno != lock && (set[pgno] || pgno > low) {
				pgnos = append(pgnos, pgno)
			}
		}
	}
	hdr := ltx.Header{Version: ltx.Version, PageSize: bigPageSize, Commit: s.commit, MinTXID: minTXID, MaxTXID: maxTXID, Timestamp: int64(maxTXID) * 60000}
	if minTXID > 1 {
		hdr.PreApplyChecksum = m.checksum(minTXID - 1)
	}
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() {
		enc, err := ltx.NewEncoder(pw)
		if err == nil {
			err = enc.EncodeHeader(hdr)
		}
		for _, pgno := range pgnos {
			if err != nil {
				break
			}
			err = enc.EncodePage(ltx.PageHeader{Pgno: pgno}, m.page(maxTXID, pgno))
		}
		if err == nil {
			enc.SetPostApplyChecksum(m.checksum(maxTXID))
			err = enc.Close()
		}
		pw.CloseWithError(err)
	}()
	if _, err := c.WriteLTXFile(context.Background(), level, minTXID, maxTXID, pr, newHistory(512).txTime(maxTXID)); err != nil {
		t.Fatal(err)
	}
}

// check compares the restored file with the model, page by page.
func (m *bigModel) check(t *testing.T, txid ltx.TXID, out string, res *restore.Result) {
	t.Helper()
	s := m.states[txid]
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != int64(s.commit)*bigPageSize {
		t.Fatalf("TXID %s: restored file of %v bytes (%v); want %d pages", txid, fi.Size(), err, s.commit)
	}
	buf := make([]byte, bigPageSize)
	for pgno := uint32(1); pgno <= s.commit; pgno++ {
		if _, err := io.ReadFull(f, buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, m.page(txid, pgno)) {
			t.Fatalf("TXID %s: page %d differs (the lock page is %d)", txid, pgno, ltx.LockPgno(bigPageSize))
		}
	}
	if res.Pages != s.commit || res.Checksum != m.checksum(txid) || res.TXID != txid {
		t.Fatalf("TXID %s: result %+v; want %d pages, checksum %s", txid, res, s.commit, m.checksum(txid))
	}
}

// TestRestorePastLockPage restores databases larger than 1 GiB: the lock
// page (the page holding byte offset 2^30, which no LTX file holds) stays
// zeros and out of the checksum, while pages on both sides of it are
// written, overwritten, truncated away and grown into again.
func TestRestorePastLockPage(t *testing.T) {
	lock := ltx.LockPgno(bigPageSize)
	run := func(t *testing.T, m *bigModel, files []fileRef, txids ...ltx.TXID) {
		m.sums(t, lock+8)
		c := newReplica(t)
		for _, f := range files {
			m.write(t, c, f.level, f.min, f.max)
		}
		for _, txid := range txids {
			dir, out := outPath(t)
			res, err := restore.Restore(context.Background(), c, out, restore.Options{Target: restore.Target{TXID: txid}, IntegrityCheck: "none"})
			if err != nil {
				t.Fatalf("TXID %s: %v", txid, err)
			}
			m.check(t, txid, out, res)
			os.Remove(out)
			checkNothingWritten(t, dir)
		}
	}

	// A small database grows past 1 GiB: its files hold a few pages, and
	// the restored file is sparse.
	t.Run("grown", func(t *testing.T) {
		m := &bigModel{states: []bigState{{}}}
		m.tx(4, 1, 2, 3, 4)                                             // 1: a snapshot
		m.tx(lock+8, 1, lock-3, lock-2, lock-1, lock+1, lock+2, lock+8) // 2: grows past the lock page
		m.tx(lock+8, 2, lock-1, lock+1)                                 // 3: overwrites pages around it
		m.tx(lock-2, 1)                                                 // 4: shrinks below it
		m.tx(lock+4, lock-1, lock+4)                                    // 5: grows past it again: lock+1..lock+3 are zeros
		run(t, m, refs(l9(1), l0Each(2, 5)), 5)
	})
}

// bigSnapshot returns a history whose TXID 1 is 17 MiB of incompressible
// pages (many writes of the restore, and enough for a remote replica to be
// downloaded as ranges), and its encoded snapshot.
func bigSnapshot(t *testing.T) (*history, []byte) {
	h := newHistory(65536)
	img := make([]byte, 272*65536)
	rand.NewChaCha8([32]byte{2}).Read(img)
	h.txImage(img)
	return h, h.encode(t, 1, 1, fileOpts{})
}

// TestRestoreBadFileMidStream: a snapshot cut short, or with a byte changed,
// far into its pages (after many pages were written) fails the restore,
// with the file named, and leaves nothing in the output directory, whether
// it is streamed, downloaded, or downloaded as ranges while it is applied.
func TestRestoreBadFileMidStream(t *testing.T) {
	h, good := bigSnapshot(t)
	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x40
		return b
	}
	bad := []struct {
		name string
		b    []byte
	}{
		{"truncated", good[:len(good)*3/5]},
		{"truncated in the trailer", good[:len(good)-3]},
		{"changed page data", flip(len(good) * 3 / 5)},
		{"changed header", flip(10)},
	}
	want := storage.Describe(storage.SnapshotLevel, 1, 1)
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			c := newReplica(t)
			if _, err := c.WriteLTXFile(context.Background(), storage.SnapshotLevel, 1, 1, bytes.NewReader(tc.b), h.txTime(1)); err != nil {
				t.Fatal(err)
			}
			// Streamed, and downloaded as ranges while it is applied.
			for _, client := range []storage.Client{c, remote{c}} {
				for _, n := range []int{8} {
					dir, out := outPath(t)
					cc := newCountingClient(client, dir)
					res, err := restore.Restore(context.Background(), cc, out, restore.Options{IntegrityCheck: "none", Parallelism: n})
					if err == nil {
						t.Fatalf("%s, parallelism %d: restore succeeded: %+v", client.Type(), n, res)
					}
					if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "no output was written") {
						t.Errorf("%s, parallelism %d: error %q does not name %s", client.Type(), n, err, want)
					}
					checkNothingWritten(t, dir)
					if cc.open != 0 {
						t.Errorf("%s, parallelism %d: %d readers left open", client.Type(), n, cc.open)
					}
				}
			}
		})
	}

	// The good file restores every way.
	c := newReplica(t)
	if _, err := c.WriteLTXFile(context.Background(), storage.SnapshotLevel, 1, 1, bytes.NewReader(good), h.txTime(1)); err != nil {
		t.Fatal(err)
	}
	for _, client := range []storage.Client{c, remote{c}} {
		for _, n := range []int{1, 8} {
			_, out := outPath(t)
			res, err := restore.Restore(context.Background(), client, out, restore.Options{IntegrityCheck: "none", Parallelism: n})
			if err != nil {
				t.Fatalf("%s, parallelism %d: %v", client.Type(), n, err)
			}
			checkRestored(t, h, 1, out, res, 1)
		}
	}
}

// TestRestoreRangedDownloadFails: when a range of a large file that is being
// applied as it downloads cannot be read, the restore fails with the
// download's error, naming the file; every reader is closed and nothing is
// left in the output directory.
func TestRestoreRangedDownloadFails(t *testing.T) {
	h, _ := bigSnapshot(t)
	h.tx(272, 3, 271)
	c := newReplica(t)
	writeAll(t, h, c, refs(l9(1), l0Each(2, 2)))
	snapshot := storage.Describe(storage.SnapshotLevel, 1, 1)
	for _, failing := range []int{1, 2, 3} { // each of the three ranges, in the order they are opened
		t.Run(fmt.Sprint("range ", failing), func(t *testing.T) {
			dir, out := outPath(t)
			cc := newCountingClient(remote{c}, dir)
			var mu sync.Mutex
			k := 0
			cc.onOpen = func(_ int, name string, rc io.ReadCloser) io.ReadCloser {
				if name != snapshot {
					return rc
				}
				mu.Lock()
				defer mu.Unlock()
				if k++; k == failing {
					// Not found midway: not retried.
					return &brokenReader{rc, 64 << 10, fmt.Errorf("%w: the object went away", storage.ErrNotFound)}
				}
				return rc
			}
			_, err := restore.Restore(context.Background(), cc, out, restore.Options{IntegrityCheck: "none", Parallelism: 2})
			if err == nil || !strings.Contains(err.Error(), snapshot) || !strings.Contains(err.Error(), "the object went away") ||
				!errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("error %v; want the download's, naming %s", err, snapshot)
			}
			checkNothingWritten(t, dir)
			if cc.open != 0 {
				t.Errorf("%d readers left open", cc.open)
			}
		})
	}
}

// brokenReader fails with err after n bytes.
type brokenReader struct {
	io.ReadCloser
	n   int
	err error
}

func (r *brokenReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, r.err
	}
	n, err := r.ReadCloser.Read(p[:min(len(p), r.n)])
	r.n -= n
	return n, err
}
