package filerecord

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/filerecord/filerecordtest"
)

// TestSuite runs the backends' suite on a local directory: with an atomic
// replace (as SFTP with posix-rename@openssh.com), without one (as WebDAV),
// and with modification times only from ModTime (a WebDAV server whose GET
// has no Last-Modified).
func TestSuite(t *testing.T) {
	servers := map[string]*localServer{
		"Replace":   {},
		"NoReplace": {noReplace: true},
		"ModTimer":  {noReplace: true, noReadTime: true, modTimer: true},
	}
	for name, s := range servers {
		t.Run(name, func(t *testing.T) {
			filerecordtest.Run(t, func(t *testing.T) filerecordtest.Dir {
				dir := t.TempDir()
				return filerecordtest.Dir{Path: dir, Open: func() storage.Records { return s.open(dir, nil) }}
			})
		})
	}
}

// TestInterruptedReplacement stops a replacement without Replace between
// its moves, as a kill would: meanwhile another reader reads the copy
// aside, at the old version, and afterwards the next writer replaces the
// record at that version.
func TestInterruptedReplacement(t *testing.T) {
	dir := t.TempDir()
	s := &localServer{noReplace: true}
	w, reader := s.open(dir, nil), (&localServer{}).open(dir, nil)
	ctx := context.Background()
	v1, err := w.WriteRecord(ctx, "r", []byte("one"), "")
	if err != nil {
		t.Fatal(err)
	}
	interrupt := errors.New("interrupted")
	record, old := filepath.Join(dir, "r"), filepath.Join(dir, ".r.old")
	s.before = func(method, p string) error {
		if method != "move" || p != record {
			return nil
		}
		if _, err := os.Stat(old); err != nil {
			t.Errorf("the record is moved into place with no copy aside: %v", err)
		}
		if _, err := os.Stat(record); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("between the moves the record is still in place: %v", err)
		}
		if data, v, err := reader.ReadRecord(ctx, "r"); err != nil || string(data) != "one" || v != v1 {
			t.Errorf("between the moves read %q version %q (%v); want the old record", data, v, err)
		}
		return interrupt
	}
	if _, err := w.WriteRecord(ctx, "r", []byte("two"), v1); !errors.Is(err, interrupt) {
		t.Fatalf("interrupted write: %v", err)
	}
	s.before = nil
	if _, err := w.WriteRecord(ctx, "r", []byte("x"), ""); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("creating a record whose replacement was interrupted: %v; want storage.ErrConflict", err)
	}
	v3, err := w.WriteRecord(ctx, "r", []byte("three"), v1)
	if err != nil {
		t.Fatalf("replacing a record whose replacement was interrupted: %v", err)
	}
	filerecordtest.ExpectRecord(t, reader, "r", "three", v3)
	filerecordtest.ExpectFiles(t, dir, "r")
}

// TestLostAnswers writes a chain of records while a fifth of the answers
// are lost after the request was carried out: with each step run again
// from the start (SFTP, after its connection broke) and with each request
// sent again (WebDAV). Every write succeeds once, the record ends at the
// last one, and the writes leave nothing else.
func TestLostAnswers(t *testing.T) {
	servers := map[string]*localServer{
		"StepAgain":          {},
		"StepAgainNoReplace": {noReplace: true},
		"RequestAgain":       {noReplace: true, resend: true},
	}
	for name, s := range servers {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			rng := rand.New(rand.NewPCG(1, 2))
			s.lose = func() bool { return rng.IntN(5) == 0 }
			c := s.open(dir, nil)
			version := ""
			for i := range 30 {
				v, err := c.WriteRecord(context.Background(), "r", fmt.Appendf(nil, "%d", i), version)
				if err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
				version = v
			}
			s.lose = nil
			filerecordtest.ExpectRecord(t, c, "r", "29", version)
			filerecordtest.ExpectFiles(t, dir, "r")
		})
	}
}

// TestLockBrokenBeforeCommit has another writer break the lock as stale
// and take it while a write holds it: the write fails with
// storage.ErrConflict before it commits, and leaves the other's lock.
func TestLockBrokenBeforeCommit(t *testing.T) {
	dir := t.TempDir()
	s := &localServer{}
	c := s.open(dir, nil)
	ctx := context.Background()
	v, err := c.WriteRecord(ctx, "r", []byte("one"), "")
	if err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, ".r.lock")
	s.before = func(method, p string) error {
		if method == "write" && strings.HasPrefix(filepath.Base(p), ".r.tmp-") {
			return os.WriteFile(lock, []byte("another writer's token"), 0o644)
		}
		return nil
	}
	_, err = c.WriteRecord(ctx, "r", []byte("two"), v)
	if !errors.Is(err, storage.ErrConflict) || !strings.Contains(err.Error(), "replica local: write record r: ") || !strings.Contains(err.Error(), lock) {
		t.Fatalf("a write whose lock was broken: %v; want storage.ErrConflict naming the replica and the lock", err)
	}
	s.before = nil
	filerecordtest.ExpectRecord(t, c, "r", "one", v)
	if got, _ := os.ReadFile(lock); string(got) != "another writer's token" {
		t.Fatalf("the other writer's lock holds %q", got)
	}
	filerecordtest.ExpectFiles(t, dir, ".r.lock", "r")
}

// TestStaleLockTakenMeanwhile has another writer break a stale lock and
// take it just before this one moves it aside: this one puts that live lock
// back and fails with storage.ErrConflict.
func TestStaleLockTakenMeanwhile(t *testing.T) {
	dir := t.TempDir()
	s := &localServer{}
	c := s.open(dir, nil)
	lock := filepath.Join(dir, ".r.lock")
	writeAged(t, lock, "a dead writer's token", staleLockAge+5*time.Second)
	s.before = func(method, p string) error {
		if method == "move" && strings.HasPrefix(filepath.Base(p), "..r.lock.tmp-") {
			return os.WriteFile(lock, []byte("another writer's token"), 0o644)
		}
		return nil
	}
	_, err := c.WriteRecord(context.Background(), "r", []byte("one"), "")
	if !errors.Is(err, storage.ErrConflict) || !strings.Contains(err.Error(), "while its stale predecessor was broken") {
		t.Fatalf("breaking a lock another writer took meanwhile: %v; want storage.ErrConflict", err)
	}
	if got, _ := os.ReadFile(lock); string(got) != "another writer's token" {
		t.Fatalf("the live lock was not put back: the lock holds %q", got)
	}
	filerecordtest.ExpectFiles(t, dir, ".r.lock")
}

// TestStaleLockBrokenLogged checks that breaking a stale lock is logged,
// naming the replica and the lock.
func TestStaleLockBrokenLogged(t *testing.T) {
	dir := t.TempDir()
	var log bytes.Buffer
	c := (&localServer{}).open(dir, &log)
	lock := filepath.Join(dir, ".r.lock")
	writeAged(t, lock, "a dead writer's token", time.Hour)
	if _, err := c.WriteRecord(context.Background(), "r", []byte("one"), ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "broke a stale lock") || !strings.Contains(log.String(), lock) {
		t.Fatalf("the broken lock was not logged with its path:\n%s", log.String())
	}
}

// TestNoModificationTime refuses to tell a stale lock from a live one on a
// server that reports no modification time.
func TestNoModificationTime(t *testing.T) {
	dir := t.TempDir()
	c := (&localServer{noReadTime: true}).open(dir, nil)
	writeAged(t, filepath.Join(dir, ".r.lock"), "a dead writer's token", time.Hour)
	_, err := c.WriteRecord(context.Background(), "r", []byte("one"), "")
	if err == nil || !strings.Contains(err.Error(), "no modification time") {
		t.Fatalf("a write with a lock of unknown age in the way: %v; want an error saying the server reports no time", err)
	}
}

// writeAged writes data to p and dates it age ago.
func writeAged(t *testing.T, p, data string, age time.Duration) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	mtime := time.Now().Add(-age)
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}
