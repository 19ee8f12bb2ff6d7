package walship

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

type sqliteCode int

func (c sqliteCode) Error() string { return fmt.Sprintf("sqlite error %d", int(c)) }
func (c sqliteCode) Code() int     { return int(c) }

// TestTransient: what start-up retries and what it gives up on.
func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("stage a file: %w", syscall.ENOSPC), true},
		{fmt.Errorf("open: %w", syscall.EACCES), true},
		{fmt.Errorf("open the database: %w", sqliteCode(13)), true},       // SQLITE_FULL
		{fmt.Errorf("open the database: %w", sqliteCode(5|(3<<8))), true}, // SQLITE_BUSY_SNAPSHOT
		{fmt.Errorf("open the database: %w", sqliteCode(26)), false},      // SQLITE_NOTADB
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},       // a store not up yet
		{&net.DNSError{Err: "no such host", IsNotFound: true}, false},     // a misspelt host
		{fmt.Errorf("list: %w", x509.UnknownAuthorityError{}), false},     // a certificate that does not verify
		{errors.New("the file is not a SQLite database"), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestFileStampSame: the fallback poll sees a file written, replaced (even
// by one of the same size and time), created or removed, and nothing else.
func TestFileStampSame(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db-wal")
	if !stampOf(path).same(stampOf(path)) {
		t.Error("no file, twice: seen as a change")
	}
	missing := stampOf(path)
	if err := os.WriteFile(path, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	first := stampOf(path)
	if missing.same(first) {
		t.Error("a file created: not seen")
	}
	if !first.same(stampOf(path)) {
		t.Error("an unchanged file: seen as a change")
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("d")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if first.same(stampOf(path)) {
		t.Error("a file appended to: not seen")
	}
	written := stampOf(path)
	// Another file, same size and modification time, renamed over it.
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("abcd"), 0o600); err != nil {
		t.Fatal(err)
	}
	mod := written.fi.ModTime()
	if err := os.Chtimes(other, mod, mod); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	replaced := stampOf(path)
	if replaced.fi.Size() != written.fi.Size() || !replaced.fi.ModTime().Equal(mod) {
		t.Fatal("the replacement does not have the same size and time")
	}
	if written.same(replaced) {
		t.Error("a file replaced by one of the same size and time: not seen")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if replaced.same(stampOf(path)) {
		t.Error("a file removed: not seen")
	}
}

// TestWALStampSeesRestart: a commit that restarts the log overwrites the
// WAL from its start, in place, and may leave its size and (on a file
// system with coarse times) its time as they were: the poll sees the new
// header's checkpoint sequence and salts.
func TestWALStampSeesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db-wal")
	old := make([]byte, 4096)
	copy(old, "\x37\x7f\x06\x82\x00\x2d\xe2\x18\x00\x00\x10\x00\x00\x00\x00\x01salt-one")
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	before := walStampOf(path)
	if !before.same(walStampOf(path)) {
		t.Fatal("an unchanged WAL: seen as a change")
	}
	// The log restarts: the next checkpoint sequence, new salts, written
	// over the same file at the same size, its time put back.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("\x00\x00\x00\x02salt-two"), 12); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mod := before.fi.ModTime()
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
	after := walStampOf(path)
	if after.fi.Size() != before.fi.Size() || !after.fi.ModTime().Equal(mod) || !os.SameFile(after.fi, before.fi) {
		t.Fatal("the restarted WAL is not the same file at the same size and time")
	}
	if before.same(after) {
		t.Error("a WAL restarted in place at the same size and time: not seen")
	}
	// Without its header, the stamp cannot tell: the database file's
	// stamp does not read it, and must not open the file.
	if !stampOf(path).same(stampOf(path)) {
		t.Error("stampOf differs for an unchanged file")
	}
}

// Each database polls once per fallbackPoll at the instant of its slot,
// fallbackPoll/levels.Slots apart from the next slot's, whatever the time
// now, and never at once.
func TestUntilPoll(t *testing.T) {
	base := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC) // a whole multiple of 10 s
	for _, c := range []struct {
		now  time.Duration // after base
		slot int
		want time.Duration
	}{
		{0, 0, 10 * time.Second},
		{0, 3, 3 * time.Second},
		{2500 * time.Millisecond, 3, 500 * time.Millisecond},
		{3 * time.Second, 3, 10 * time.Second},
		{9 * time.Second, 3, 4 * time.Second},
	} {
		if got := untilPoll(base.Add(c.now), c.slot); got != c.want {
			t.Errorf("at +%s in slot %d: %s; want %s", c.now, c.slot, got, c.want)
		}
	}
}
