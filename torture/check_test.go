package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/sqliteuri"
)

// writeHistory commits n transactions of h into the database at path, as
// the application does, and closes it.
func writeHistory(t *testing.T, path string, h history, n int) mark {
	t.Helper()
	ctx := context.Background()
	a, err := openApplication(ctx, path, h)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := a.commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	m := a.mark
	if err := a.close(); err != nil {
		t.Fatal(err)
	}
	return m
}

// tamper runs SQL on the database behind the application's back.
func tamper(t *testing.T, path, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", sqliteuri.File(path, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// What the application writes checks, at every stage, as the state after
// the commit its meta row names: a copy taken part way is a prefix of the
// history, and the database goes on from where it stands when reopened.
func TestCheckAcceptsEveryPrefix(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	h := history{seed: 7}
	var copies []string
	for i, n := range []int{1, 60, 200} {
		writeHistory(t, path, h, n)
		c := filepath.Join(dir, "copy"+string(rune('a'+i))+".db")
		copyFile(t, path, c)
		copies = append(copies, c)
	}
	for i, want := range []int64{1, 61, 261} {
		m, err := h.check(ctx, copies[i], false)
		if err != nil {
			t.Fatalf("copy after %d commits: %v", want, err)
		}
		if m != (mark{commit: want}) {
			t.Fatalf("copy after %d commits checks as %+v", want, m)
		}
	}
	// Another seed's history is not this one.
	if _, err := (history{seed: 8}).check(ctx, copies[2], false); !isMismatch(err) {
		t.Fatalf("checked against another seed: %v, want a mismatch", err)
	}
}

// The history exercises what it must: batches, large rows, updates and
// deletes of rows that exist.
func TestHistoryShape(t *testing.T) {
	h := history{seed: 3}
	s := &state{next: 1, rows: map[int64]int64{}}
	var inserts, batches, updates, deletes, large int
	m := mark{}
	for c := int64(1); c <= 5000; c++ {
		o := h.op(m, c, s.next)
		switch o.kind {
		case opInsert:
			inserts++
			if o.rows > 1 {
				batches++
			}
			for n := s.next; n < s.next+int64(o.rows); n++ {
				if len(h.payload(m, c, n)) >= 8<<10 {
					large++
				}
			}
		case opUpdate:
			if _, ok := s.rows[o.row]; ok {
				updates++
			}
		case opDelete:
			if _, ok := s.rows[o.row]; ok {
				deletes++
			}
		}
		s.apply(c, o)
	}
	for name, n := range map[string]int{"inserts": inserts, "batches": batches, "updates of a live row": updates, "deletes of a live row": deletes, "large rows": large} {
		if n < 100 {
			t.Errorf("%d %s in 5000 commits; want at least 100", n, name)
		}
	}
	if got := h.replay(mark{commit: 5000}); len(got.rows) != len(s.rows) || got.next != s.next {
		t.Errorf("replay gives %d rows, next %d; applying the ops gave %d, next %d", len(got.rows), got.next, len(s.rows), s.next)
	}
}

// Every way a database can differ from the state its meta row names is a
// mismatch that says what differs.
func TestCheckFindsMismatches(t *testing.T) {
	ctx := context.Background()
	h := history{seed: 11}
	base := filepath.Join(t.TempDir(), "base.db")
	writeHistory(t, base, h, 150)
	want := h.replay(mark{commit: 150})
	var live, gone int64
	for n := int64(1); n < want.next; n++ {
		if _, ok := want.rows[n]; ok && live == 0 {
			live = n
		} else if !ok && gone == 0 {
			gone = n
		}
	}
	if live == 0 || gone == 0 {
		t.Fatalf("the history of seed 11 has no deleted row in 150 commits; pick another seed")
	}
	for _, c := range []struct {
		name  string
		query string
		args  []any
		says  string
	}{
		{"a row's content changed", `UPDATE rows SET v = x'00' || v WHERE n = ?`, []any{live}, "differ"},
		{"a row gone", `DELETE FROM rows WHERE n = ?`, []any{live}, "missing"},
		{"a deleted row back", `INSERT INTO rows (n, w, v) VALUES (?, 1, x'01')`, []any{gone}, "must not exist"},
		{"a row past the end", `INSERT INTO rows (n, w, v) VALUES (?, 1, x'01')`, []any{want.next}, "must not exist"},
		{"a row's writer changed", `UPDATE rows SET w = w + 1 WHERE n = ?`, []any{live}, "was written by commit"},
		{"the commit count one behind", `UPDATE meta SET c = c - 1`, nil, "after commit 149"},
		{"the next row number wrong", `UPDATE meta SET next = next + 1`, nil, "next row"},
		{"a table more", `CREATE TABLE extra (x)`, nil, "schema"},
		{"a branch before commit 0", `UPDATE meta SET branch = 5, branch_at = c + 1`, nil, "impossible"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			copyFile(t, base, path)
			tamper(t, path, c.query, c.args...)
			_, err := h.check(ctx, path, true)
			if !isMismatch(err) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("check: %v; want a mismatch saying %q", err, c.says)
			}
		})
	}
	if _, err := h.check(ctx, filepath.Join(t.TempDir(), "none.db"), false); !isMismatch(err) {
		t.Fatalf("check of no file: %v, want a mismatch", err)
	}
}

// A branch's commits check against the branch, with every commit of the
// WAL a crashed application left; without the WAL they do not.
func TestCheckBranchWithWAL(t *testing.T) {
	ctx := context.Background()
	h := history{seed: 5}
	path := filepath.Join(t.TempDir(), "app.db")
	writeHistory(t, path, h, 40)
	a, err := openApplication(ctx, path, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.setBranch(ctx, 0xabc); err != nil {
		t.Fatal(err)
	}
	if err := a.crash(ctx, 10); err != nil {
		t.Fatal(err)
	}
	// The application "crashes": its connection is never closed, so the
	// last nine commits stay in the WAL.
	want := mark{commit: 50, branch: 0xabc, branchAt: 40}
	m, err := h.check(ctx, path, true)
	if err != nil {
		t.Fatal(err)
	}
	if m != want {
		t.Fatalf("branch checks as %+v, want %+v", m, want)
	}
	m, err = h.check(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if m.commit != 41 {
		t.Fatalf("the file alone, without its WAL, checks as commit %d, want 41 (the commit checkpointed before the crash)", m.commit)
	}
	a.close()
}

// sameBytes holds for a byte-for-byte copy of the database and fails for
// a copy with one byte changed.
func TestSameBytes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	writeHistory(t, src, history{seed: 1}, 80)
	cp := filepath.Join(dir, "copy.db")
	copyFile(t, src, cp)
	if err := sameBytes(ctx, src, cp); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(cp)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-100] ^= 1
	if err := os.WriteFile(cp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := sameBytes(ctx, src, cp); !isMismatch(err) {
		t.Fatalf("a copy with a byte changed: %v, want a mismatch", err)
	}
}

func TestRestorePoints(t *testing.T) {
	f := func(level int, lo, hi uint64) ltxFile {
		return ltxFile{Level: level, MinTXID: ltx.TXID(lo), MaxTXID: ltx.TXID(hi)}
	}
	for _, c := range []struct {
		name  string
		files []ltxFile
		want  []uint64
	}{
		{"from the oldest snapshot", []ltxFile{f(0, 3, 3), f(0, 4, 4), f(0, 5, 6), f(9, 1, 4), f(1, 3, 6)}, []uint64{4, 6}},
		{"a first file with no snapshot yet", []ltxFile{f(0, 1, 1), f(0, 2, 2)}, []uint64{1, 2}},
		{"a history after a takeover", []ltxFile{f(0, 1<<32, 1<<32), f(0, 1<<32+1, 1<<32+1)}, []uint64{1 << 32, 1<<32 + 1}},
		{"nothing to start from", []ltxFile{f(0, 5, 5)}, nil},
	} {
		got := restorePoints(c.files)
		if len(got) != len(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if uint64(got[i]) != c.want[i] {
				t.Errorf("%s: %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
}
