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
		// Each first snapshot goes to an empty replica, from an empty
		// staging directory; the last one stays for the restores.
		var key string
		var runs []timing
		for i := range b.repeat {
			key = fmt.Sprintf("bulk-%s-%d", t.name, i)
			os.RemoveAll(filepath.Join(dir, ".big.db-walship"))
			r, err := b.timed(dir, "snapshot", "replicate", "-once", path, t.url(key, false))
			if err != nil {
				return err
			}
			runs = append(runs, r)
		}
		rate, took, peak, cold := summarize(runs, size)
		b.add(result{
			Scenario: "first snapshot",
			Case:     fmt.Sprintf("%s to %s", mb(size), t.name),
			Figure:   fmt.Sprintf("%.0f MB/s (%.1f s), peak RSS %s", rate, took.Seconds(), mb(peak)),
			Target:   "≥ 300 MB/s, RSS ≤ 64 MB",
			Met:      rate >= 300 && peak <= 64<<20,
			Detail: fmt.Sprintf("`walship replicate -once DB %s` into an empty replica, on a database of incompressible rows%s; median of %d runs (%s MB/s), the largest peak RSS",
				t.name, cacheNote(cold), len(runs), fmtList(rates(runs, size), "%.0f")),
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
	snap, err := b.timed(dir, "snapshot", "replicate", "-once", path, t.url("bulk-bigger", false))
	if err != nil {
		return err
	}
	out := filepath.Join(dir, "restored.db")
	rest, err := b.timed(dir, "restore", "restore", "-o", out, t.url("bulk-bigger", false))
	if err != nil {
		return err
	}
	b.add(result{
		Scenario: "memory, larger database",
		Case:     fmt.Sprintf("%s, directory", mb(size)),
		Figure: fmt.Sprintf("peak RSS: first snapshot %s (%.0f MB/s), restore %s (%.0f MB/s)",
			mb(snap.use.peakRSS), rates([]timing{snap}, size)[0], mb(rest.use.peakRSS), rates([]timing{rest}, size)[0]),
		Target: "RSS ≤ 64 MB",
		Met:    snap.use.peakRSS <= 64<<20 && rest.use.peakRSS <= 64<<20,
		Detail: "the same commands on a larger database: memory must not grow with the database",
	})
	return nil
}

// restore times walship restore from t's replica at key with SQLite's check
// check ("quick", the default, or "none") and compares the output with sum.
func (b *bench) restore(dir string, t target, key string, size int64, sum []byte, check string) error {
	out := filepath.Join(dir, "restored.db")
	defer os.Remove(out)
	var runs []timing
	same := true
	for range b.repeat {
		os.Remove(out)
		r, err := b.timed(dir, "restore", "restore", "-integrity-check", check, "-o", out, t.url(key, false))
		if err != nil {
			return err
		}
		runs = append(runs, r)
		ok, err := sameHash(out, sum)
		if err != nil {
			return err
		}
		same = same && ok
	}
	rate, took, peak, cold := summarize(runs, size)
	c := fmt.Sprintf("%s from %s", mb(size), t.name)
	if check != "quick" {
		c += ", -integrity-check " + check
	}
	b.add(result{
		Scenario: "restore",
		Case:     c,
		Figure:   fmt.Sprintf("%.0f MB/s (%.1f s), peak RSS %s", rate, took.Seconds(), mb(peak)),
		Target:   "≥ 400 MB/s, RSS ≤ 64 MB",
		Met:      rate >= 400 && peak <= 64<<20 && same,
		Detail: fmt.Sprintf("`walship restore -integrity-check %s -o OUT %s`, timed to the fsynced, checked output%s; median of %d runs (%s MB/s), the largest peak RSS; every output identical to the original: %v",
			check, t.name, cacheNote(cold), len(runs), fmtList(rates(runs, size), "%.0f"), same),
	})
	return nil
}

// timing is one timed run of walship.
type timing struct {
	took time.Duration
	use  usage
	cold bool
}

// summarize returns the median rate (MB/s) of runs over size bytes, the
// median duration, the largest peak RSS, and whether every run was cold.
func summarize(runs []timing, size int64) (float64, time.Duration, int64, bool) {
	var took []float64
	var peak int64
	cold := true
	for _, r := range runs {
		took = append(took, r.took.Seconds())
		peak = max(peak, r.use.peakRSS)
		cold = cold && r.cold
	}
	t := median(took)
	return float64(size) / 1e6 / t, time.Duration(t * float64(time.Second)), peak, cold
}

func rates(runs []timing, size int64) []float64 {
	var r []float64
	for _, x := range runs {
		r = append(r, float64(size)/1e6/x.took.Seconds())
	}
	return r
}

// timed runs walship with args, after emptying the page cache, and returns
// how long it took and what it used.
func (b *bench) timed(dir, name string, args ...string) (timing, error) {
	cold := dropCaches()
	begun := time.Now()
	p, err := start(name, 0, dir, b.minio.env(), b.walship, args...)
	if err != nil {
		return timing{}, err
	}
	if err := p.wait(30 * time.Minute); err != nil {
		return timing{}, err
	}
	return timing{took: time.Since(begun), use: p.usage(), cold: cold}, nil
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
