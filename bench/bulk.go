package main

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/walship/walship/internal/sqliteuri"
)

// bulk measures the first snapshot of a large database (replicate -once) and
// its restore, from a directory and from MinIO, with the page cache emptied
// before each; each also with an encrypted replica, alternating with the
// plain one, and the ratio of the two; then the larger database (bigger).
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
	// Litestream adds two tables to the database it replicates: it gets a
	// copy of its own, so that walship's replicas stay comparable with sum.
	lsPath := filepath.Join(dir, "ls.db")
	if b.litestream != "" {
		if err := copyFile(path, lsPath); err != nil {
			return err
		}
		defer os.Remove(lsPath)
	}
	var smallPeak int64 // of the plain restore from MinIO, for the larger database's
	for _, t := range b.targets() {
		// Each first snapshot goes to an empty replica, from an empty
		// staging directory; the last one of each twin stays for the
		// restores.
		twins := []target{t, t.encrypted()}
		if b.litestream != "" {
			twins = append(twins, t.withLitestream())
		}
		keys := make([]string, len(twins))
		runs, err := b.alternate(len(twins), func(i, round int) (timing, error) {
			u := twins[i]
			keys[i] = fmt.Sprintf("bulk-%s-%d", u.slug(), round)
			if u.litestream {
				os.RemoveAll(filepath.Join(dir, ".ls.db-litestream"))
				cfg := filepath.Join(dir, keys[i]+".yml")
				if err := u.writeToolConfig(cfg, lsPath, keys[i], false, ""); err != nil {
					return timing{}, err
				}
				return b.timedBin(b.litestream, b.lsEnv(), dir, "litestream-snapshot", "replicate", "-once", "-config", cfg)
			}
			os.RemoveAll(filepath.Join(dir, ".big.db-walship"))
			args := append(append([]string{"replicate", "-once"}, u.keyArgs()...), path, u.url(keys[i], false))
			return b.timed(dir, "snapshot", args...)
		})
		if err != nil {
			return err
		}
		for i, u := range twins[:2] {
			rate, took, peak, cold := summarize(runs[i], size)
			var ls *vs
			lsNote := ""
			if i == 0 && len(twins) > 2 {
				lr, lt, _, _ := summarize(runs[2], size)
				ls = &vs{figure: fmt.Sprintf("%.0f MB/s (%.1f s), %s; %s", lr, lt.Seconds(), fmtPeak(largest(runs[2])), ofLimit(lr, b.limits.disk(), "the disk")),
					ratio: ratioOf(rate, lr), of: "MB/s; higher is walship ahead"}
				lsNote = fmt.Sprintf("; Litestream: `litestream replicate -once -config CFG` (its first sync writes the whole database as one level-0 LTX file, which it uploads before -once returns) on its own copy of the database into an empty replica, its runs alternating with walship's: %s MB/s",
					fmtList(rates(runs[2], size), "%.0f"))
			}
			g := snapshotGoal(u, rate, peak, b.limits)
			b.add(result{
				Scenario: "first snapshot",
				Case:     fmt.Sprintf("%s to %s", mb(size), u.label()),
				Figure:   fmt.Sprintf("%.0f MB/s (%.1f s), %s", rate, took.Seconds(), fmtPeak(largest(runs[i]))),
				Target:   g.target,
				Met:      g.met,
				LS:       ls,
				Limit:    ofLimit(rate, b.limits.disk(), "the disk"),
				Detail: fmt.Sprintf("`walship replicate -once%s DB %s` into an empty replica, on a database of incompressible rows%s; median of %d runs (%s MB/s), the largest peak RSS; %s%s%s",
					u.keyNote(), u.name, cacheNote(cold), len(runs[i]), fmtList(rates(runs[i], size), "%.0f"), twinNote(u), diskTargetNote(g, b.limits), lsNote),
			})
		}
		b.addCost("encryption cost", fmt.Sprintf("first snapshot, %s to %s", mb(size), t.name), "MB/s",
			rates(runs[0], size), rates(runs[1], size), "`walship replicate -once` as above")

		lsSum, err := fileHash(lsPath)
		if err != nil && b.litestream != "" {
			return err
		}
		peak, err := b.restore(dir, twins, keys, size, sum, lsSum, lsPath, "quick")
		if err != nil {
			return err
		}
		if t.name == "MinIO" {
			smallPeak = peak
		}
		if t.name == "directory" {
			// SQLite's quick_check, on by default, reads the output twice;
			// the checksums alone already prove it is the replicated state.
			if _, err := b.restore(dir, twins, keys, size, sum, lsSum, lsPath, "none"); err != nil {
				return err
			}
		}
		checks := []string{"quick"}
		if t.name == "directory" {
			checks = append(checks, "none")
		}
		b.profileBulk(dir, t, path, keys[0], size, checks)
		os.RemoveAll(filepath.Join(dir, ".big.db-walship"))
		os.RemoveAll(filepath.Join(dir, ".ls.db-litestream"))
		// Every round's replicas are a copy of the database: free the disk
		// for the next kind of replica and the larger database.
		if err := t.removeReplicas("bulk-"); err != nil {
			return err
		}
	}
	os.Remove(path)
	if b.bigSize == 0 {
		return nil
	}
	return b.bigger(dir, size, smallPeak)
}

// profileBulk profiles, apart from the timed runs, a first snapshot of the
// database at path (size bytes) to t, into a replica of its own, and a
// restore from t's replica at key with each of checks.
func (b *bench) profileBulk(dir string, t target, path, key string, size int64, checks []string) {
	os.RemoveAll(filepath.Join(dir, ".big.db-walship"))
	b.profileRun(dir, fmt.Sprintf("first snapshot, %s to %s", mb(size), t.name),
		"replicate", "-once", path, t.url("bulk-profile-"+t.slug(), false))
	out := filepath.Join(dir, "restored.db")
	defer os.Remove(out)
	for _, check := range checks {
		os.Remove(out)
		b.profileRun(dir, fmt.Sprintf("restore, %s from %s, -integrity-check %s", mb(size), t.name, check),
			"restore", "-integrity-check", check, "-o", out, t.url(key, false))
	}
}

// bigger measures the larger database (issue 17: 10 GB): the peak memory of
// its first snapshot to a directory and to MinIO, which must stay what it
// is at 1 GB, and the time and memory of its restore from MinIO, whose
// memory must stay that of the smaller database's restore from MinIO in the
// same run (smallPeak, at smallSize bytes). Litestream is not run on it:
// its twin would need another copy of the database.
func (b *bench) bigger(dir string, smallSize, smallPeak int64) error {
	// The database, its MinIO replica and the restored copy, at once.
	if err := enoughSpace(dir, 3*b.bigSize+1<<30); err != nil {
		return fmt.Errorf("the larger database: %w", err)
	}
	path := filepath.Join(dir, "bigger.db")
	defer os.Remove(path)
	staging := filepath.Join(dir, ".bigger.db-walship")
	defer os.RemoveAll(staging)
	fmt.Printf("  filling %s with %s of random rows\n", path, mb(b.bigSize))
	if err := fill(path, b.bigSize); err != nil {
		return err
	}
	size := fileSize(path)
	sum, err := fileHash(path)
	if err != nil {
		return err
	}
	key := func(t target) string { return "bulk-bigger-" + t.slug() }
	for _, t := range b.targets() {
		os.RemoveAll(staging)
		snap, err := b.timed(dir, "snapshot", "replicate", "-once", path, t.url(key(t), false))
		if err != nil {
			return err
		}
		if t.name == "directory" {
			// Only the MinIO replica is restored: free the disk.
			os.RemoveAll(filepath.Join(b.work, "replicas", key(t)))
		}
		rate := rates([]timing{snap}, size)[0]
		g := bigSnapshotGoal(snap.use.peakRSS)
		b.add(result{
			Scenario: "larger database",
			Case:     fmt.Sprintf("first snapshot, %s to %s", mb(size), t.name),
			Figure:   fmt.Sprintf("%s; %.0f MB/s (%.1f s)", fmtPeak(snap.use), rate, snap.took.Seconds()),
			Target:   g.target,
			Met:      g.met,
			Limit:    ofLimit(rate, b.limits.disk(), "the disk"),
			Detail: fmt.Sprintf("`walship replicate -once DB %s` into an empty replica, one run, on a database of incompressible rows%s: memory must not grow with the database",
				t.name, cacheNote(snap.cold)),
		})
	}
	os.RemoveAll(staging)

	minio := b.targets()[1]
	out := filepath.Join(dir, "restored-bigger.db")
	defer os.Remove(out)
	rest, err := b.timed(dir, "restore", "restore", "-o", out, minio.url(key(minio), false))
	if err != nil {
		return err
	}
	same, err := sameHash(out, sum)
	if err != nil {
		return err
	}
	if err := minio.removeReplicas("bulk-bigger-"); err != nil {
		return err
	}
	rate := rates([]timing{rest}, size)[0]
	g := bigRestoreGoal(b.bigSize, rest.took, rest.use.peakRSS, smallSize, smallPeak)
	b.add(result{
		Scenario: "larger database",
		Case:     fmt.Sprintf("restore, %s from MinIO", mb(size)),
		Figure:   fmt.Sprintf("%.1f s (%.0f MB/s), %s", rest.took.Seconds(), rate, fmtPeak(rest.use)),
		Target:   g.target,
		Met:      g.met && same,
		Limit:    ofLimit(rate, b.limits.disk(), "the disk"),
		Detail: fmt.Sprintf("`walship restore -o OUT MinIO` (default settings: SQLite's quick_check on), one run, timed to the fsynced, checked output%s; "+
			"the output identical to the original: %v; RSS flat: its peak within %.0f%% of the plain restore from MinIO of the %s database above",
			cacheNote(rest.cold), same, 100*(flatRSS-1), mb(smallSize)),
	})
	return nil
}

// enoughSpace fails if the file system under dir has less than need bytes
// free: a larger database that fills a shared disk harms more than the run.
func enoughSpace(dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("free space under %s: %w", dir, err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return fmt.Errorf("it needs %s free under %s (the database, its MinIO replica and a restored copy) and has %s: pass a smaller -big, or -big 0 to skip it",
			mb(need), dir, mb(free))
	}
	return nil
}

// diskTargetNote says what a target that is a share of the disk divides,
// if g is one.
func diskTargetNote(g goal, l limits) string {
	if !strings.Contains(g.target, "of disk") {
		return ""
	}
	return fmt.Sprintf("; the target is a share of the disk's fsynced sequential write rate measured at the start of this run, %.0f MB/s (issue 17)", l.diskWrite)
}

// restore times walship restore with SQLite's check check ("quick", the
// default, or "none") from each of twins' replicas (at keys), alternating,
// and compares every output with sum; a Litestream twin, if any, restores
// with the same check the database at lsPath, whose content is lsSum. It
// returns the largest peak RSS of the plain replica's restores.
func (b *bench) restore(dir string, twins []target, keys []string, size int64, sum, lsSum []byte, lsPath, check string) (int64, error) {
	out := filepath.Join(dir, "restored.db")
	defer os.Remove(out)
	same := make([]bool, len(twins))
	for i := range same {
		same[i] = true
	}
	runs, err := b.alternate(len(twins), func(i, _ int) (timing, error) {
		os.Remove(out)
		u, want := twins[i], sum
		bin, args := u.restoreArgs(filepath.Join(dir, keys[i]+".yml"), lsPath, keys[i], out, check)
		env := b.minio.env()
		if u.litestream {
			want, env = lsSum, b.lsEnv()
		}
		r, err := b.timedBin(bin, env, dir, "restore", args...)
		if err != nil {
			return r, err
		}
		ok, err := sameHash(out, want)
		same[i] = same[i] && ok
		return r, err
	})
	if err != nil {
		return 0, err
	}
	opt := ""
	if check != "quick" {
		opt = ", -integrity-check " + check
	}
	for i, u := range twins[:2] {
		rate, took, peak, cold := summarize(runs[i], size)
		var ls *vs
		lsNote := ""
		if i == 0 && len(twins) > 2 {
			lr, lt, _, _ := summarize(runs[2], size)
			ls = &vs{figure: fmt.Sprintf("%.0f MB/s (%.1f s), %s; %s", lr, lt.Seconds(), fmtPeak(largest(runs[2])), ofLimit(lr, b.limits.disk(), "the disk")),
				ratio: ratioOf(rate, lr), of: "MB/s; higher is walship ahead"}
			lsNote = fmt.Sprintf("; Litestream: `litestream restore -integrity-check %s -o OUT -config CFG DB` (the same check; its default is none), its runs alternating with walship's: %s MB/s, every output identical to its database: %v",
				check, fmtList(rates(runs[2], size), "%.0f"), same[2])
		}
		g := restoreGoal(u, check, rate, peak, b.limits)
		b.add(result{
			Scenario: "restore",
			Case:     fmt.Sprintf("%s from %s%s", mb(size), u.label(), opt),
			Figure:   fmt.Sprintf("%.0f MB/s (%.1f s), %s", rate, took.Seconds(), fmtPeak(largest(runs[i]))),
			Target:   g.target,
			Met:      g.met && same[i],
			LS:       ls,
			Limit:    ofLimit(rate, b.limits.disk(), "the disk"),
			Detail: fmt.Sprintf("`walship restore%s -integrity-check %s -o OUT %s`, timed to the fsynced, checked output%s; median of %d runs (%s MB/s), the largest peak RSS; every output identical to the original: %v; %s%s%s",
				u.keyNote(), check, u.name, cacheNote(cold), len(runs[i]), fmtList(rates(runs[i], size), "%.0f"), same[i], twinNote(u), diskTargetNote(g, b.limits), lsNote),
		})
	}
	b.addCost("encryption cost", fmt.Sprintf("restore, %s from %s%s", mb(size), twins[0].name, opt), "MB/s",
		rates(runs[0], size), rates(runs[1], size), "`walship restore` as above")
	_, _, peak, _ := summarize(runs[0], size)
	return peak, nil
}

// alternate times n cases b.repeat times each, in rounds whose order
// rotates (round r starts with case r mod n), so that drift in the machine's
// load falls on all of them alike. It returns each case's timings, by round.
func (b *bench) alternate(n int, run func(i, round int) (timing, error)) ([][]timing, error) {
	runs := make([][]timing, n)
	for round := range b.repeat {
		for k := range n {
			i := (k + round) % n
			r, err := run(i, round)
			if err != nil {
				return nil, err
			}
			runs[i] = append(runs[i], r)
		}
	}
	return runs, nil
}

// twinNote says which twin's runs t's alternated with.
func twinNote(t target) string {
	if t.key != "" {
		return "the runs alternate with those of the plain replica"
	}
	return "the runs alternate with those of the encrypted replica"
}

// timing is one timed run of walship.
type timing struct {
	took time.Duration
	use  usage
	cold bool
}

// largest is the largest peak RSS of runs and the largest anonymous part.
func largest(runs []timing) usage {
	var u usage
	for _, r := range runs {
		u.peakRSS = max(u.peakRSS, r.use.peakRSS)
		u.peakAnon = max(u.peakAnon, r.use.peakAnon)
	}
	return u
}

// fmtPeak is a run's peak RSS, with the most of it that was anonymous
// memory: the rest is mapped files (the executable; the restored database
// while SQLite checks it through a memory map), which the kernel counts
// in RSS and can drop at will.
func fmtPeak(u usage) string {
	return fmt.Sprintf("peak RSS %s (%s anonymous)", mb(u.peakRSS), mb(u.peakAnon))
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
	return b.timedBin(b.walship, b.minio.env(), dir, name, args...)
}

// timedBin is timed with another program, e.g. Litestream.
func (b *bench) timedBin(bin string, env []string, dir, name string, args ...string) (timing, error) {
	cold := dropCaches()
	begun := time.Now()
	p, err := start(name, 0, dir, env, bin, args...)
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

// copyFile copies the file at from to to, fsynced.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", from, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
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
