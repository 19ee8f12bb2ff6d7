package litestream03

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

const gen = "0123456789abcdef"

var base = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// scenario is one generation: snapshot 0, WAL index 0 (four commits in
// three segments), snapshot 1 of index 1, WAL index 1 (four commits, a
// VACUUM among them, in segments cut inside a transaction too). states[k]
// is the database after commit k (states[0] is snapshot 0), and at[k] is
// when the segment holding commit k was written.
type scenario struct {
	r        *replica
	pageSize int
	states   [][]byte
	at       []time.Time
	wal      [2]*walIndex
}

func buildScenario(t *testing.T, pageSize int) *scenario {
	t.Helper()
	a := newApp(t, pageSize)
	s := &scenario{r: newReplica(t), pageSize: pageSize}
	s0 := a.step(60)
	s.r.put(SnapshotName(gen, 0), s0, base)
	s.states, s.at = [][]byte{s0}, []time.Time{base}

	w0 := newWALIndex(pageSize, 0x1000, s0)
	for i := range 4 {
		st := a.step(2 + i)
		w0.commit(st)
		s.states = append(s.states, st)
	}
	t0 := s.r.segments(gen, 0, w0, []int64{w0.commits[0], w0.commits[2]}, base.Add(10*time.Second))
	s.at = append(s.at, t0[0], t0[1], t0[1], t0[2])

	s4 := s.states[4]
	s.r.put(SnapshotName(gen, 1), s4, base.Add(20*time.Second))
	w1 := newWALIndex(pageSize, 0x2001, s4)
	for i := range 4 {
		var st []byte
		if i == 2 {
			st = a.vacuum()
		} else {
			st = a.step(1 + i)
		}
		w1.commit(st)
		s.states = append(s.states, st)
	}
	// Segments: [commit 5] [commit 6 and the first frame of 7] [the rest
	// of 7, and 8].
	frameSize := int64(pageSize + 24)
	t1 := s.r.segments(gen, 1, w1, []int64{w1.commits[0], w1.commits[1] + frameSize}, base.Add(30*time.Second))
	s.at = append(s.at, t1[0], t1[1], t1[2], t1[2])
	s.wal = [2]*walIndex{w0, w1}
	return s
}

func TestRestoreLatest(t *testing.T) {
	for _, ps := range []int{512, 4096, 65536} {
		s := buildScenario(t, ps)
		got, res, err := restoreTo(t, s.r, time.Time{})
		if err != nil {
			t.Fatalf("page size %d: %v", ps, err)
		}
		if want := s.states[8]; !bytes.Equal(got, want) {
			t.Fatalf("page size %d: the restored database (%d bytes) is not the last state (%d bytes)", ps, len(got), len(want))
		}
		if res.Generation != gen || res.Index != 1 || res.Offset != s.wal[1].commits[3] || !res.Time.Equal(s.at[8]) || res.Pages != uint32(len(got)/ps) || res.PageSize != uint32(ps) {
			t.Fatalf("page size %d: result %+v", ps, res)
		}
		if len(res.Skipped) != 0 || res.Objects != 4 {
			t.Fatalf("page size %d: the restore read %d objects and skipped %q; want the newest snapshot and its 3 segments", ps, res.Objects, res.Skipped)
		}
	}
}

// TestRestoreEveryTime restores the state at the time of every object and
// between them: each is exactly the state after the last commit written by
// then, from the newest snapshot written by then.
func TestRestoreEveryTime(t *testing.T) {
	s := buildScenario(t, 4096)
	for k := range s.states {
		for _, d := range []time.Duration{0, 500 * time.Millisecond} {
			target := s.at[k].Add(d)
			want := k
			for want+1 < len(s.at) && !s.at[want+1].After(target) {
				want++
			}
			got, res, err := restoreTo(t, s.r, target)
			if err != nil {
				t.Fatalf("restore %s: %v", target, err)
			}
			if !bytes.Equal(got, s.states[want]) {
				t.Fatalf("restore %s: not the state after commit %d", target, want)
			}
			wantSnap, wantTime := SnapshotName(gen, 0), s.at[want]
			if !target.Before(base.Add(20 * time.Second)) {
				wantSnap = SnapshotName(gen, 1)
				if want == 4 {
					wantTime = base.Add(20 * time.Second)
				}
			}
			if res.Snapshot != wantSnap || !res.Time.Equal(wantTime) {
				t.Fatalf("restore %s: from %s, of %s; want from %s, of %s", target, res.Snapshot, res.Time, wantSnap, wantTime)
			}
		}
	}
	// Between snapshot 1 and the first segment of its index: the snapshot
	// alone.
	got, _, err := restoreTo(t, s.r, base.Add(25*time.Second))
	if err != nil || !bytes.Equal(got, s.states[4]) {
		t.Fatalf("restore between snapshot 1 and its first segment: %v; want the state after commit 4", err)
	}
	_, _, err = restoreTo(t, s.r, base.Add(-time.Second))
	if err == nil || !strings.Contains(err.Error(), "holds nothing written at or before 2025-06-01T11:59:59Z") {
		t.Fatalf("restore before the backup: %v", err)
	}
}

// TestRestoreGenerations: the latest state comes from the generation
// written last; a time comes from the generation that was current then.
func TestRestoreGenerations(t *testing.T) {
	s := buildScenario(t, 4096)
	a := newApp(t, 4096)
	other := "fedcba9876543210"
	o0 := a.step(5)
	s.r.put(SnapshotName(other, 0), o0, base.Add(time.Hour))
	w := newWALIndex(4096, 0x3000, o0)
	o1 := a.step(2)
	w.commit(o1)
	s.r.segments(other, 0, w, nil, base.Add(time.Hour+time.Second))

	got, res, err := restoreTo(t, s.r, time.Time{})
	if err != nil || !bytes.Equal(got, o1) || res.Generation != other {
		t.Fatalf("latest: %v, generation %v; want the newer generation's last state", err, res)
	}
	got, res, err = restoreTo(t, s.r, base.Add(50*time.Second))
	if err != nil || !bytes.Equal(got, s.states[8]) || res.Generation != gen {
		t.Fatalf("a time of the older generation: %v, %v; want its last state", err, res)
	}
	got, _, err = restoreTo(t, s.r, base.Add(time.Hour))
	if err != nil || !bytes.Equal(got, o0) {
		t.Fatalf("the newer generation's snapshot time: %v", err)
	}
}

// seg returns the name of segment i of WAL index index of the scenario.
func (s *scenario) seg(index, i int) string {
	offs := [][]int64{
		{0, s.wal[0].commits[0], s.wal[0].commits[2]},
		{0, s.wal[1].commits[0], s.wal[1].commits[1] + int64(s.pageSize+24)},
	}
	return SegmentName(gen, index, offs[index][i])
}

// segTime returns when segment i of WAL index index was written.
func segTime(index, i int) time.Time {
	return base.Add(time.Duration(10+20*index+i) * time.Second)
}

// TestRestoreFails: every kind of damage fails the restore with a message
// naming the object and what to do; nothing settles for another state.
func TestRestoreFails(t *testing.T) {
	latest := func(*scenario) time.Time { return time.Time{} }
	inIndex0 := func(s *scenario) time.Time { return s.at[4] }
	tests := []struct {
		name    string
		target  func(*scenario) time.Time
		damage  func(*scenario)
		want    func(*scenario) []string
		damaged bool // an *ObjectError with Damaged set
	}{
		{
			name:   "segment missing in the middle",
			target: latest,
			damage: func(s *scenario) { s.r.remove(s.seg(1, 1)) },
			want: func(s *scenario) []string {
				return []string{s.seg(1, 2), "is missing bytes", "the backup reaches no further than " + s.seg(1, 0), "restore a time before this segment was written (2025-06-01T12:00:32Z) with -timestamp"}
			},
			damaged: true,
		},
		{
			name:   "start of a WAL index missing",
			target: latest,
			damage: func(s *scenario) { s.r.remove(s.seg(1, 0)) },
			want: func(s *scenario) []string {
				return []string{"the start of WAL index 00000001 is missing", SegmentName(gen, 1, 0), "no further than " + SnapshotName(gen, 1) + ", written at 2025-06-01T12:00:20Z", "-timestamp"}
			},
		},
		{
			name:   "WAL index missing",
			target: latest,
			damage: func(s *scenario) {
				s.r.remove(SnapshotName(gen, 1))
				for i := range 3 {
					s.r.remove(s.seg(0, i))
				}
			},
			want: func(s *scenario) []string {
				return []string{"WAL index 00000000 is missing", "no further than " + SnapshotName(gen, 0), "-timestamp"}
			},
		},
		{
			name:   "segment cut short",
			target: inIndex0,
			damage: func(s *scenario) { b := s.r.read(s.seg(0, 1)); s.r.putRaw(s.seg(0, 1), b[:len(b)/2], segTime(0, 1)) },
			want: func(s *scenario) []string {
				return []string{s.seg(0, 1), "cut short", "restore a time before it was written (2025-06-01T12:00:11Z)"}
			},
			damaged: true,
		},
		{
			name:    "last segment cut short",
			target:  latest,
			damage:  func(s *scenario) { b := s.r.read(s.seg(1, 2)); s.r.putRaw(s.seg(1, 2), b[:len(b)-3], segTime(1, 2)) },
			want:    func(s *scenario) []string { return []string{s.seg(1, 2), "cut short"} },
			damaged: true,
		},
		{
			// Found by the frame checksums before LZ4's content
			// checksum, at the end, is read.
			name:   "compressed byte flipped",
			target: latest,
			damage: func(s *scenario) {
				b := s.r.read(s.seg(1, 1))
				b[len(b)/2] ^= 0x40
				s.r.putRaw(s.seg(1, 1), b, segTime(1, 1))
			},
			want:    func(s *scenario) []string { return []string{s.seg(1, 1), "fails its checksum"} },
			damaged: true,
		},
		{
			name:   "LZ4 checksum",
			target: latest,
			damage: func(s *scenario) {
				b := s.r.read(s.seg(1, 1))
				b[len(b)-1] ^= 0x40
				s.r.putRaw(s.seg(1, 1), b, segTime(1, 1))
			},
			want:    func(s *scenario) []string { return []string{s.seg(1, 1), "does not decompress", "checksum"} },
			damaged: true,
		},
		{
			name:   "frame checksum",
			target: latest,
			damage: func(s *scenario) {
				b := decompressAll(t, s.r.read(s.seg(1, 1)))
				b[s.pageSize+24+100] ^= 1 // the second frame's page
				s.r.put(s.seg(1, 1), b, segTime(1, 1))
			},
			want:    func(s *scenario) []string { return []string{s.seg(1, 1), "fails its checksum"} },
			damaged: true,
		},
		{
			name:   "frame of another WAL",
			target: latest,
			damage: func(s *scenario) {
				b := decompressAll(t, s.r.read(s.seg(1, 2)))
				binary.BigEndian.PutUint32(b[8:], 0xdead)
				s.r.put(s.seg(1, 2), b, segTime(1, 2))
			},
			want: func(s *scenario) []string {
				return []string{s.seg(1, 2), "has salts 0000dead", "belongs to another WAL"}
			},
			damaged: true,
		},
		{
			name:   "WAL of another page size",
			target: latest,
			damage: func(s *scenario) {
				w := newWALIndex(1024, 0x2001, nil)
				s.r.put(s.seg(1, 0), w.b.Bytes(), segTime(1, 0))
			},
			want: func(s *scenario) []string {
				return []string{s.seg(1, 0), "gives 1024-byte pages; the snapshot's are 4096 bytes"}
			},
			damaged: true,
		},
		{
			name:   "WAL header checksum",
			target: latest,
			damage: func(s *scenario) {
				b := decompressAll(t, s.r.read(s.seg(1, 0)))
				b[12] ^= 1 // the checkpoint sequence
				s.r.put(s.seg(1, 0), b, segTime(1, 0))
			},
			want:    func(s *scenario) []string { return []string{s.seg(1, 0), "does not start with a valid WAL header"} },
			damaged: true,
		},
		{
			name:   "encrypted",
			target: latest,
			damage: func(s *scenario) {
				s.r.putRaw(s.seg(1, 1), []byte("age-encryption.org/v1\n-> X25519 ..."), segTime(1, 1))
			},
			want:    func(s *scenario) []string { return []string{s.seg(1, 1), "encrypted with age", "litestream restore"} },
			damaged: true,
		},
		{
			name:    "empty",
			target:  latest,
			damage:  func(s *scenario) { s.r.putRaw(s.seg(1, 1), nil, segTime(1, 1)) },
			want:    func(s *scenario) []string { return []string{s.seg(1, 1), "0 bytes long"} },
			damaged: true,
		},
		{
			name:    "not LZ4",
			target:  latest,
			damage:  func(s *scenario) { s.r.putRaw(s.seg(1, 1), []byte("plain bytes, not compressed"), segTime(1, 1)) },
			want:    func(s *scenario) []string { return []string{s.seg(1, 1), "not LZ4-compressed"} },
			damaged: true,
		},
		{
			name:   "overlapping segment",
			target: latest,
			damage: func(s *scenario) {
				off := s.wal[1].commits[0] + int64(s.pageSize+24)
				s.r.put(SegmentName(gen, 1, off), s.wal[1].b.Bytes()[off:s.wal[1].commits[1]], segTime(1, 1))
			},
			want:    func(s *scenario) []string { return []string{"inside " + s.seg(1, 1)} },
			damaged: true,
		},
		{
			name:   "only snapshot not SQLite",
			target: latest,
			damage: func(s *scenario) {
				s.r.remove(SnapshotName(gen, 0))
				s.r.put(SnapshotName(gen, 1), bytes.Repeat([]byte("not a database "), 1000), base.Add(20*time.Second))
			},
			want: func(s *scenario) []string {
				return []string{SnapshotName(gen, 1), "not a SQLite database", "holds no older snapshot"}
			},
			damaged: true,
		},
		{
			name:   "only snapshot cut short",
			target: inIndex0,
			damage: func(s *scenario) {
				s.r.put(SnapshotName(gen, 0), s.states[0][:len(s.states[0])-100], base)
			},
			want: func(s *scenario) []string {
				return []string{SnapshotName(gen, 0), "not a whole number of 4096-byte pages", "restore a time before it was written (2025-06-01T12:00:00Z)"}
			},
			damaged: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := buildScenario(t, 4096)
			tt.damage(s)
			_, _, err := restoreTo(t, s.r, tt.target(s))
			if err == nil {
				t.Fatal("the restore succeeded")
			}
			t.Log(err)
			for _, w := range tt.want(s) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q:\n%v", w, err)
				}
			}
			var oe *ObjectError
			if errors.As(err, &oe) != tt.damaged || tt.damaged && !oe.Damaged {
				t.Errorf("the error is %T (%v); want an *ObjectError of a damaged object: %v", err, err, tt.damaged)
			}
		})
	}
}

// TestPlanNoSnapshot: a generation without a snapshot to start from is an
// error that says which time to restore instead; an older generation is
// never read in its place.
func TestPlanNoSnapshot(t *testing.T) {
	s := buildScenario(t, 4096)
	s.r.remove(SnapshotName(gen, 0))
	_, _, err := restoreTo(t, s.r, s.at[2])
	if err == nil || !strings.Contains(err.Error(), "holds no snapshot written by then (its oldest, "+SnapshotName(gen, 1)+", was written at 2025-06-01T12:00:20Z); restore that time or a later one, or one before 2025-06-01T12:00:10Z") {
		t.Fatalf("a time before the oldest snapshot: %v", err)
	}

	a := newApp(t, 4096)
	other := "fedcba9876543210"
	w := newWALIndex(4096, 0x3000, a.step(5))
	w.commit(a.step(2))
	s.r.segments(other, 0, w, nil, base.Add(time.Hour))
	_, _, err = restoreTo(t, s.r, time.Time{})
	if err == nil || !strings.Contains(err.Error(), "generation "+other+", the newest (written from 2025-06-01T13:00:00Z to 2025-06-01T13:00:00Z), holds no snapshot") || !strings.Contains(err.Error(), "restore a time before 2025-06-01T13:00:00Z with -timestamp") {
		t.Fatalf("latest, the newest generation without a snapshot: %v", err)
	}
}

// TestRestoreAroundDamagedSnapshot: a damaged snapshot is gone around, from
// an older one, to the same state.
func TestRestoreAroundDamagedSnapshot(t *testing.T) {
	s := buildScenario(t, 4096)
	snap := s.r.read(SnapshotName(gen, 1))
	s.r.putRaw(SnapshotName(gen, 1), snap[:len(snap)/2], base.Add(20*time.Second))
	got, res, err := restoreTo(t, s.r, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, s.states[8]) {
		t.Fatal("not the last state")
	}
	if res.Snapshot != SnapshotName(gen, 0) || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0], SnapshotName(gen, 1)) {
		t.Fatalf("restored from %s, skipping %q; want from snapshot 0, skipping snapshot 1", res.Snapshot, res.Skipped)
	}
}

// TestRestoreDamageAfterTarget: a damaged segment after the target, which
// the restore reads only to check the snapshot, does not fail it.
func TestRestoreDamageAfterTarget(t *testing.T) {
	for _, cut := range []int{3, 200} {
		s := buildScenario(t, 4096)
		b := s.r.read(s.seg(1, 2))
		s.r.putRaw(s.seg(1, 2), b[:len(b)-cut], segTime(1, 2))
		got, _, err := restoreTo(t, s.r, s.at[6])
		if err != nil || !bytes.Equal(got, s.states[6]) {
			t.Fatalf("cut %d: %v; want the state after commit 6", cut, err)
		}
	}
}

// TestRestoreSnapshotAhead: a snapshot that holds a change its WAL index
// makes after the target is not laid under the WAL before that change; the
// restore goes around it, and fails without an older snapshot.
func TestRestoreSnapshotAhead(t *testing.T) {
	s := buildScenario(t, 4096)
	ps := s.pageSize
	page := func(b []byte, p int) []byte {
		if p*ps > len(b) {
			return nil
		}
		return b[(p-1)*ps : p*ps]
	}
	// A page that commit 6 changes and commit 5 does not, within the
	// database after commit 5.
	p := 0
	for q := 2; q*ps <= len(s.states[5]); q++ {
		if bytes.Equal(page(s.states[4], q), page(s.states[5], q)) && !bytes.Equal(page(s.states[5], q), page(s.states[6], q)) {
			p = q
			break
		}
	}
	if p == 0 {
		t.Fatal("commit 6 changes no page that commit 5 leaves")
	}
	// Snapshot 1, taken while a checkpoint had already copied commit 6's
	// version of that page into the database file.
	torn := bytes.Clone(s.states[4])
	copy(torn[(p-1)*ps:p*ps], page(s.states[6], p))
	s.r.put(SnapshotName(gen, 1), torn, base.Add(20*time.Second))

	target := s.at[5]
	got, res, err := restoreTo(t, s.r, target)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, s.states[5]) {
		t.Fatal("not the state after commit 5")
	}
	if res.Snapshot != SnapshotName(gen, 0) || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0], "written after the state restored") {
		t.Fatalf("restored from %s, skipping %q; want from snapshot 0, around snapshot 1", res.Snapshot, res.Skipped)
	}
	// The latest state replays the whole index over the snapshot: exact.
	if got, _, err := restoreTo(t, s.r, time.Time{}); err != nil || !bytes.Equal(got, s.states[8]) {
		t.Fatalf("latest: %v", err)
	}

	s.r.remove(SnapshotName(gen, 0))
	_, _, err = restoreTo(t, s.r, target)
	var ahead *AheadError
	if !errors.As(err, &ahead) || ahead.Pgno != uint32(p) || ahead.Segment != s.seg(1, 1) || !strings.Contains(err.Error(), "holds no older snapshot") {
		t.Fatalf("without an older snapshot: %v; want an AheadError about page %d in %s", err, p, s.seg(1, 1))
	}
}

func TestParseName(t *testing.T) {
	for name, want := range map[string]string{
		"generations/0123456789abcdef/snapshots/0000000a.snapshot.lz4":   "snapshot 10",
		"generations/0123456789abcdef/wal/0000000a_00001038.wal.lz4":     "segment 10 4152",
		"generations/0123456789abcdef/wal/0000000a_100001038.wal.lz4":    "segment 10 4294971448",
		"generations/0123456789abcdef/wal/0000000a_00001038.wal.lz4.tmp": "",
		"generations/0123456789abcdef/wal/0000000A_00001038.wal.lz4":     "",
		"generations/0123456789abcde/wal/0000000a_00001038.wal.lz4":      "",
		"generations/0123456789abcdef/snapshots/a.snapshot.lz4":          "",
		"generations/0123456789abcdef/snapshots/80000000.snapshot.lz4":   "",
		"generations/0123456789abcdef/other/0000000a_00001038.wal.lz4":   "",
		"generations/0123456789abcdef/wal/sub/0000000a_00001038.wal.lz4": "",
		"ltx/0/0000000000000001-0000000000000001.ltx":                    "",
		"x/generations/0123456789abcdef/wal/0000000a_00001038.wal.lz4":   "",
		"generations/0123456789abcdef/wal/0000000a00001038.wal.lz4":      "",
		"generations/0123456789abcdef/wal/0000000a_00001038_1.wal.lz4":   "",
		"generations/0123456789abcdef/snapshots/0000000a_0.snapshot.lz4": "",
	} {
		g, snap, seg, ok := ParseName(name)
		got := ""
		switch {
		case ok && snap != nil:
			got = "snapshot " + itoa(snap.Index)
		case ok && seg != nil:
			got = "segment " + itoa(seg.Index) + " " + strconv.FormatInt(seg.Offset, 10)
		}
		if got != want || ok && g != gen {
			t.Errorf("ParseName(%q) = %q %q; want %q", name, g, got, want)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
