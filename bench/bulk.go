package main

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/walship/walship/internal/sqliteuri"
)

// bulk measures the first snapshot of a large database (replicate -once) and
// its restore, from a directory and from MinIO, with the page cache emptied
// before each; then the memory of both on a larger database.
func (b *bench) bulk() error {
	dir := b.dir("bulk")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "big.db")
	fmt.Printf("  filling %s with %s of random rows\n", path, mb(b.size))
	if err := fill(path, b.size); err != nil {
		return err
	}
	size := fileSize(path)
	sum, err := fileHash(path)
	if err != nil {
		return err
	}
	for _, t := range b.targets() {
		key := "bulk-" + t.name
		took, u, cold, err := b.timed(dir, "snapshot", path, "replicate", "-once", path, t.url(key, false))
		if err != nil {
			return err
		}
		rate := float64(size) / 1e6 / took.Seconds()
		b.add(result{
			Scenario: "first snapshot",
			Case:     fmt.Sprintf("%s to %s", mb(size), t.name),
			Figure:   fmt.Sprintf("%.0f MB/s (%.1f s), peak RSS %s", rate, took.Seconds(), mb(u.peakRSS)),
			Target:   "≥ 300 MB/s, RSS ≤ 64 MB",
			Met:      rate >= 300 && u.peakRSS <= 64<<20,
			Detail:   fmt.Sprintf("`walship replicate -once DB %s` on a database of incompressible rows%s; walship's CPU time %.1f s", t.name, cacheNote(cold), u.cpu.Seconds()),
		})

		if err := b.restore(dir, t, key, size, sum, "quick"); err != nil {
			return err
		}
		if t.name == "directory" {
			// SQLite's quick_check, on by default, reads the output twice;
			// the checksums alone already prove it is the replicated state.
			if err := b.restore(dir, t, key, size, sum, "none"); err != nil {
				return err
			}
		}
		os.RemoveAll(filepath.Join(dir, ".big.db-walship"))
	}
	os.Remove(path)
	if b.bigSize == 0 {
		return nil
	}

	path = filepath.Join(dir, "bigger.db")
	fmt.Printf("  filling %s with %s of random rows\n", path, mb(b.bigSize))
	if err := fill(path, b.bigSize); err != nil {
		return err
	}
	size = fileSize(path)
	t := b.targets()[0]
	took, snap, _, err := b.timed(dir, "snapshot", path, "replicate", "-once", path, t.url("bulk-bigger", false))
	if err != nil {
		return err
	}
	snapRate := float64(size) / 1e6 / took.Seconds()
	out := filepath.Join(dir, "restored.db")
	took, rest, _, err := b.timed(dir, "restore", "", "restore", "-o", out, t.url("bulk-bigger", false))
	if err != nil {
		return err
	}
	b.add(result{
		Scenario: "memory, larger database",
		Case:     fmt.Sprintf("%s, directory", mb(size)),
		Figure: fmt.Sprintf("peak RSS: first snapshot %s (%.0f MB/s), restore %s (%.0f MB/s)",
			mb(snap.peakRSS), snapRate, mb(rest.peakRSS), float64(size)/1e6/took.Seconds()),
		Target: "RSS ≤ 64 MB",
		Met:    snap.peakRSS <= 64<<20 && rest.peakRSS <= 64<<20,
		Detail: "the same commands on a larger database: memory must not grow with the database",
	})
	return nil
}

// restore times walship restore from t's replica at key with SQLite's check
// check ("quick", the default, or "none") and compares the output with sum.
func (b *bench) restore(dir string, t target, key string, size int64, sum []byte, check string) error {
	out := filepath.Join(dir, "restored.db")
	defer os.Remove(out)
	took, u, cold, err := b.timed(dir, "restore", "", "restore", "-integrity-check", check, "-o", out, t.url(key, false))
	if err != nil {
		return err
	}
	rate := float64(size) / 1e6 / took.Seconds()
	same, err := sameHash(out, sum)
	if err != nil {
		return err
	}
	c := fmt.Sprintf("%s from %s", mb(size), t.name)
	if check != "quick" {
		c += ", -integrity-check " + check
	}
	b.add(result{
		Scenario: "restore",
		Case:     c,
		Figure:   fmt.Sprintf("%.0f MB/s (%.1f s), peak RSS %s", rate, took.Seconds(), mb(u.peakRSS)),
		Target:   "≥ 400 MB/s, RSS ≤ 64 MB",
		Met:      rate >= 400 && u.peakRSS <= 64<<20 && same,
		Detail: fmt.Sprintf("`walship restore -integrity-check %s -o OUT %s`, timed to the fsynced, checked output%s; output identical to the original: %v; walship's CPU time %.1f s",
			check, t.name, cacheNote(cold), same, u.cpu.Seconds()),
	})
	return nil
}

// timed runs walship with args, after emptying the page cache, and returns
// how long it took and what it used. A non-empty db is checkpointed first,
// so the snapshot reads the database file only.
func (b *bench) timed(dir, name, db string, args ...string) (time.Duration, usage, bool, error) {
	cold := dropCaches()
	begun := time.Now()
	p, err := start(name, 0, dir, b.minio.env(), b.walship, args...)
	if err != nil {
		return 0, usage{}, cold, err
	}
	if err := p.wait(30 * time.Minute); err != nil {
		return 0, usage{}, cold, err
	}
	return time.Since(begun), p.usage(), cold, nil
}

func cacheNote(cold bool) string {
	if cold {
		return ", page cache emptied first"
	}
	return ", **page cache warm** (emptying it needs root)"
}

// fill writes rows of 1,000 random bytes until the database holds size bytes.
func fill(path string, size int64) error {
	db, err := sql.Open("sqlite", sqliteuri.File(path, "_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)"))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		return err
	}
	const batch = 20000
	for fileSize(path)+fileSize(path+"-wal") < size {
		if _, err := db.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n LIMIT ?)
			INSERT INTO t (ts, v) SELECT 0, randomblob(1000) FROM n`, batch); err != nil {
			return fmt.Errorf("fill %s: %w", path, err)
		}
		if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			return err
		}
	}
	return nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func fileHash(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func sameHash(path string, sum []byte) (bool, error) {
	got, err := fileHash(path)
	return bytes.Equal(got, sum), err
}
