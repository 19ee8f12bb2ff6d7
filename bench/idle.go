package main

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// manyDBs starts one process of t's tool replicating n new databases to t (a
// MinIO target) through the counting proxy, and returns it once every first
// snapshot is uploaded, with how long that took.
func (b *bench) manyDBs(name string, n int, t target) (*proc, []string, string, time.Duration, error) {
	dir := b.dir(name)
	var dbs []dbConfig
	var paths []string
	for i := range n {
		path := filepath.Join(dir, fmt.Sprintf("db%04d.db", i))
		if err := newDB(path); err != nil {
			return nil, nil, dir, 0, err
		}
		paths = append(paths, path)
		key := fmt.Sprintf("%s/db%04d", name, i)
		if t.litestream {
			dbs = append(dbs, dbConfig{path: path, replica: t.lsYAML(key, true, "")})
		} else {
			dbs = append(dbs, dbConfig{path: path, replica: t.yaml(key, true)})
		}
	}
	cfg := filepath.Join(dir, "replicate.yml")
	write := func() error { return writeConfigWith(cfg, t.top(), dbs) }
	if t.litestream {
		write = func() error { return writeLSConfig(cfg, dbs) }
	}
	if err := write(); err != nil {
		return nil, nil, dir, 0, err
	}
	begun := time.Now()
	w, err := t.run(dir, 0, cfg)
	if err != nil {
		return nil, nil, dir, 0, err
	}
	if err := t.waitSnapshots(name+"/", n, w, 10*time.Minute); err != nil {
		w.stop(9, time.Second)
		return nil, nil, dir, 0, err
	}
	return w, paths, dir, time.Since(begun), nil
}

// idle measures what walship costs while nothing is written: 100 databases in
// one process, once their first snapshots are uploaded and its requests have
// stopped, for 60 s; then Litestream the same way, and walship with its
// metrics served (not scraped).
func (b *bench) idle() error {
	minio := b.targets()[1]
	ts := append(b.withLitestreamTwins([]target{minio}), minio.withMetrics())
	figs := make([]idleFig, len(ts))
	for i, t := range ts {
		var err error
		if figs[i], err = b.idleOnce(t); err != nil {
			return fmt.Errorf("%s: %w", t.label(), err)
		}
	}
	for i, t := range ts {
		if t.litestream {
			continue
		}
		f := figs[i]
		var ls *vs
		lsNote := ""
		if j := lsTwin(ts, t); j >= 0 {
			l := figs[j]
			ls = &vs{figure: l.figure(), ratio: ratioOf(f.core, l.core), of: "CPU; lower is walship ahead"}
			lsNote = fmt.Sprintf("; Litestream (`litestream replicate -config`, default settings, one process, the same databases' twins and proxy, measured the same way right after walship): peak RSS %s, window started %s after start-up work ended",
				mb(l.s.peakRSS), l.settled.Round(time.Second))
		}
		g := idleGoal(t, f.core, f.s.rss, f.requests)
		b.add(result{
			Scenario: "idle",
			Case:     fmt.Sprintf("%d databases, %s", b.idleN, f.window) + t.suffix(),
			Figure:   f.figure(),
			Target:   g.target,
			Met:      g.met,
			LS:       ls,
			Detail: fmt.Sprintf("one walship process, one MinIO replica per database, requests counted by a proxy in front of MinIO; "+
				"the window starts once every first snapshot is uploaded and no request has been made for 10 s (%s after start-up work ended), or after 2 minutes; "+
				"CPU from /proc/PID/stat over the window; peak RSS %s; RSS counts the pages of walship's own executable that the kernel mapped (clean, shared, dropped under memory pressure), anonymous memory is what the databases cost; RSS at the end of the window by what it holds (/proc/PID/smaps): %s%s",
				f.settled.Round(time.Second), mb(f.s.peakRSS), f.s.parts, lsNote),
		})
	}
	return nil
}

// idleFig is what one idle measurement found.
type idleFig struct {
	window          time.Duration
	settled         time.Duration // from the first snapshots to the window
	core            float64       // share of a core over the window
	s               sample        // at the end of the window
	requests, write int64
}

func (f idleFig) figure() string {
	return fmt.Sprintf("%.2f%% of a core, RSS %s (%s anonymous), %d requests (%d writes)",
		100*f.core, mb(f.s.rss), mb(f.s.anon), f.requests, f.write)
}

func (b *bench) idleOnce(t target) (idleFig, error) {
	f := idleFig{window: 60 * time.Second}
	w, _, dir, _, err := b.manyDBs("idle-"+t.slug(), b.idleN, t)
	if err != nil {
		return f, err
	}
	defer os.RemoveAll(dir)
	defer w.stop(9, time.Second)
	f.settled = b.settle(10*time.Second, 2*time.Minute)

	r0, w0 := b.minio.requests.Load(), b.minio.writes.Load()
	s0, err := sampleProc(w.pid())
	if err != nil {
		return f, err
	}
	time.Sleep(f.window)
	if f.s, err = sampleProc(w.pid()); err != nil {
		return f, err
	}
	f.requests, f.write = b.minio.requests.Load()-r0, b.minio.writes.Load()-w0
	f.core = (f.s.cpu - s0.cpu).Seconds() / f.s.at.Sub(s0.at).Seconds()
	_, err = stopWalship(w)
	return f, err
}

// settle waits until no request has reached MinIO for quiet, and returns how
// long it waited.
func (b *bench) settle(quiet, timeout time.Duration) time.Duration {
	begun := time.Now()
	last, lastChange := b.minio.requests.Load(), time.Now()
	for time.Since(lastChange) < quiet && time.Since(begun) < timeout {
		time.Sleep(100 * time.Millisecond)
		if n := b.minio.requests.Load(); n != last {
			last, lastChange = n, time.Now()
		}
	}
	return time.Since(begun)
}

// scaleEvery is how often the scale scenario commits to each database
// (issue 17: "1,000 databases written every ~20 s").
const scaleEvery = 20 * time.Second

// scaleTargetN is the number of databases issue 17's scale target is for.
const scaleTargetN = 1000

// scale measures one process replicating b.scaleN databases (1,000; fewer
// with -quick), each written every scaleEvery, for b.scaleWindow; then
// Litestream the same way.
func (b *bench) scale() error {
	ts := b.withLitestreamTwins([]target{b.targets()[1]})
	figs := make([]scaleFig, len(ts))
	for i, t := range ts {
		var err error
		if figs[i], err = b.scaleOnce(t); err != nil {
			return fmt.Errorf("%s: %w", t.label(), err)
		}
	}
	f := figs[0]
	var ls *vs
	lsNote := ""
	if len(figs) > 1 {
		l := figs[1]
		ls = &vs{figure: l.figure(), ratio: ratioOf(float64(f.s.rss), float64(l.s.rss)), of: "RSS; lower is walship ahead"}
		lsNote = fmt.Sprintf("; Litestream (`litestream replicate -config`, default settings, one process, the same load on its own databases, right after walship): %d commits, each database written every %.1f s on average, %d uploads",
			l.commits, l.every(b.scaleN).Seconds(), l.uploads)
	}
	g := scaleGoal(f.core, f.s.peakRSS)
	b.add(result{
		Scenario: "scale",
		Case:     scaleCase(b.scaleN),
		Figure:   f.figure(),
		Target:   g.target,
		Met:      g.met,
		LS:       ls,
		Detail: fmt.Sprintf("one walship process, one MinIO replica per database; start-up is from exec to every first snapshot in MinIO; "+
			"then one commit (a 100-byte row) every %s / %d, to each database in turn (a shuffled order), for %s: %d commits, each database written every %.1f s on average, %d uploads; "+
			"CPU (share of one core) from /proc/PID/stat over that window, RSS from /proc at its end, peak RSS since start-up; RSS at the end by what it holds (/proc/PID/smaps): %s%s",
			fmtDuration(scaleEvery), b.scaleN, f.window, f.commits, f.every(b.scaleN).Seconds(), f.uploads, f.s.parts, lsNote),
	})
	return nil
}

// scaleFig is what one scale measurement found.
type scaleFig struct {
	window, startup time.Duration
	core            float64
	s               sample
	commits         int64
	uploads         int64
}

func (f scaleFig) figure() string {
	return fmt.Sprintf("%.1f%% of a core, RSS %s (%s anonymous, peak RSS %s), start-up %.1f s",
		100*f.core, mb(f.s.rss), mb(f.s.anon), mb(f.s.peakRSS), f.startup.Seconds())
}

// every is how often each of n databases was written, on average.
func (f scaleFig) every(n int) time.Duration {
	if f.commits == 0 {
		return 0
	}
	return f.window * time.Duration(n) / time.Duration(f.commits)
}

// scaleCase names the scale case of n databases, saying so when a -quick
// run has fewer than the target is for.
func scaleCase(n int) string {
	c := fmt.Sprintf("%s databases, each written every %s", thousands(float64(n)), fmtDuration(scaleEvery))
	if n < scaleTargetN {
		c += fmt.Sprintf(" (-quick: the target is for %s)", thousands(scaleTargetN))
	}
	return c
}

func (b *bench) scaleOnce(t target) (scaleFig, error) {
	f := scaleFig{window: b.scaleWindow}
	w, paths, dir, startup, err := b.manyDBs("scale-"+t.slug(), b.scaleN, t)
	if err != nil {
		return f, err
	}
	f.startup = startup
	defer os.RemoveAll(dir)
	defer w.stop(9, time.Second)

	// The writer: each database in turn, one commit every scaleEvery/n,
	// so that each is written every scaleEvery. A commit slower than the
	// tick delays the next ones; the report gives the cadence achieved.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr error
	var once sync.Once
	var commits int64
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		conns := make(map[string]*sql.DB)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		order := rand.Perm(len(paths))
		tick := time.NewTicker(scaleEvery / time.Duration(len(paths)))
		defer tick.Stop()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			p := paths[order[k%len(order)]]
			c := conns[p]
			if c == nil {
				var err error
				if c, err = openApp(p); err != nil {
					once.Do(func() { writeErr = err })
					return
				}
				conns[p] = c
			}
			if _, err := c.Exec(`INSERT INTO t (ts, v) VALUES (?, randomblob(100))`, time.Now().UnixNano()); err != nil {
				once.Do(func() { writeErr = err })
				return
			}
			mu.Lock()
			commits++
			mu.Unlock()
		}
	}()
	s0, err := sampleProc(w.pid())
	if err != nil {
		close(stop)
		wg.Wait()
		return f, err
	}
	r0 := b.minio.writes.Load()
	time.Sleep(f.window)
	f.s, err = sampleProc(w.pid())
	close(stop)
	wg.Wait()
	if err != nil {
		return f, err
	}
	if writeErr != nil {
		return f, fmt.Errorf("application: %w", writeErr)
	}
	f.core = (f.s.cpu - s0.cpu).Seconds() / f.s.at.Sub(s0.at).Seconds()
	f.commits, f.uploads = commits, b.minio.writes.Load()-r0
	_, err = stopWalship(w)
	return f, err
}
