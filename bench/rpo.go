package main

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/walship/walship/internal/sqliteuri"
)

// rpo measures what a sudden loss of the machine costs: the application
// commits 1,000 rows a second, stamped with their commit time, and is
// SIGKILLed together with walship at a random moment; the database is then
// restored from the replica alone, and the loss is the time between the
// newest row of the original and the newest row of the restored copy.
func (b *bench) rpo() error {
	type rpoCase struct {
		settings string
		extra    string
		pct      float64
		limit    time.Duration // issue 5's; rpoGoal knows issue 17's
	}
	cases := []rpoCase{
		{"default settings", "", 90, time.Second},
		{"sync-interval: 0", "sync-interval: 0s", 99, 50 * time.Millisecond},
	}
	targets := b.withLitestreamTwins(withEncrypted(b.targets()))
	for _, c := range cases {
		// The samples of the targets alternate, so that drift in the
		// machine's load falls on all of them alike.
		losses := make([][]float64, len(targets))
		for i := range b.rpoN {
			for j, t := range targets {
				loss, err := b.rpoOnce(t, c.extra)
				if err != nil {
					return fmt.Errorf("%s, %s, sample %d: %w", t.label(), c.settings, i+1, err)
				}
				losses[j] = append(losses[j], loss.Seconds())
			}
		}
		for j, t := range targets {
			if t.litestream {
				continue // its figures go beside walship's
			}
			all := losses
			losses := losses[j]
			p := percentile(losses, c.pct)
			var ls *vs
			lsNote := ""
			if k := lsTwin(targets, t); k >= 0 {
				l := percentile(all[k], c.pct)
				ls = &vs{figure: fmt.Sprintf("p%.0f %s (median %s, max %s)", c.pct, fmtSeconds(l), fmtSeconds(median(all[k])), fmtSeconds(percentile(all[k], 100))),
					ratio: ratioOf(p, l), of: fmt.Sprintf("p%.0f loss; lower is walship ahead", c.pct)}
				lsNote = fmt.Sprintf("; Litestream (`litestream replicate -config`, default settings%s), its samples alternating with walship's, restored with `litestream restore`: losses %s",
					lsSettingNote(c.extra), fmtList(all[k], "%.3f"))
			}
			g := rpoGoal(t, c.extra, c.pct, c.limit, p)
			b.add(result{
				LS:       ls,
				Scenario: "RPO on sudden loss",
				Case:     fmt.Sprintf("%s, %s", t.label(), c.settings),
				Figure: fmt.Sprintf("p%.0f %s (median %s, max %s)", c.pct, fmtSeconds(p),
					fmtSeconds(median(losses)), fmtSeconds(percentile(losses, 100))),
				Target: g.target,
				Met:    g.met,
				Detail: fmt.Sprintf("%d samples; the application commits 1,000 single-row transactions a second; "+
					"walship and the application are SIGKILLed with one signal to their process group 2–4 s after the application starts; "+
					"loss = newest commit time in the original − newest in the database restored from the replica; losses: %s%s",
					b.rpoN, fmtList(losses, "%.3f"), lsNote),
			})
		}
	}
	return nil
}

func (b *bench) rpoOnce(t target, extra string) (time.Duration, error) {
	dir := b.dir("rpo")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.db")
	if err := newDB(path); err != nil {
		return 0, err
	}
	key := filepath.Base(dir)
	cfg := filepath.Join(dir, "replicate.yml")
	if err := t.writeToolConfig(cfg, path, key, false, extra); err != nil {
		return 0, err
	}
	w, err := t.run(dir, 0, cfg)
	if err != nil {
		return 0, err
	}
	defer w.stop(syscall.SIGKILL, time.Second)
	if err := t.waitSnapshots(key, 1, w, time.Minute); err != nil {
		return 0, err
	}
	// The application joins walship's process group, so one kill stops both
	// at the same instant.
	app, err := start("app", w.pid(), dir, nil, b.self, "app", "-db", path, "-rate", "1000")
	if err != nil {
		return 0, err
	}
	defer app.stop(syscall.SIGKILL, time.Second)
	if err := app.waitLine("ready", 30*time.Second); err != nil {
		return 0, err
	}
	time.Sleep(2*time.Second + rand.N(2*time.Second))
	if err := syscall.Kill(-w.pid(), syscall.SIGKILL); err != nil {
		return 0, err
	}
	<-w.done
	<-app.done

	orig, err := newestRow(path)
	if err != nil {
		return 0, err
	}
	out := filepath.Join(dir, "restored.db")
	bin, args := t.restoreArgs(cfg, path, key, out, "")
	env := b.minio.env()
	if t.litestream {
		env = b.lsEnv()
	}
	r, err := start("restore", 0, dir, env, bin, args...)
	if err != nil {
		return 0, err
	}
	if err := r.wait(5 * time.Minute); err != nil {
		return 0, err
	}
	restored, err := newestRow(out)
	if err != nil {
		return 0, err
	}
	return orig.Sub(restored), nil
}

// newestRow opens a database (recovering its WAL, as the application would
// after the crash) and returns the commit time of its newest row.
func newestRow(path string) (time.Time, error) {
	db, err := sql.Open("sqlite", sqliteuri.File(path, "_pragma=busy_timeout(5000)"))
	if err != nil {
		return time.Time{}, err
	}
	defer db.Close()
	var ts int64
	if err := db.QueryRow(`SELECT max(ts) FROM t`).Scan(&ts); err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	return time.Unix(0, ts), nil
}

func fmtSeconds(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.0f ms", s*1000)
	}
	return fmt.Sprintf("%.2f s", s)
}
