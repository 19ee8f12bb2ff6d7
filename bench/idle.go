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

// manyDBs starts one walship process replicating n new databases to t (a
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
		dbs = append(dbs, dbConfig{path: path, replica: t.yaml(fmt.Sprintf("%s/db%04d", name, i), true)})
	}
	cfg := filepath.Join(dir, "walship.yml")
	if err := writeConfigWith(cfg, t.top(), dbs); err != nil {
		return nil, nil, dir, 0, err
	}
	begun := time.Now()
	w, err := b.replicate(dir, 0, cfg)
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
// stopped, for 60 s; then the same with its metrics served (not scraped).
func (b *bench) idle() error {
	minio := b.targets()[1]
	for _, t := range []target{minio, minio.withMetrics()} {
		if err := b.idleOnce(t); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) idleOnce(t target) error {
	window := 60 * time.Second
	w, _, dir, _, err := b.manyDBs("idle-"+t.slug(), b.idleN, t)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	defer w.stop(9, time.Second)
	settled := b.settle(10*time.Second, 2*time.Minute)

	r0, w0 := b.minio.requests.Load(), b.minio.writes.Load()
	s0, err := sampleProc(w.pid())
	if err != nil {
		return err
	}
	time.Sleep(window)
	s1, err := sampleProc(w.pid())
	if err != nil {
		return err
	}
	requests, writes := b.minio.requests.Load()-r0, b.minio.writes.Load()-w0
	core := (s1.cpu - s0.cpu).Seconds() / s1.at.Sub(s0.at).Seconds()
	b.add(result{
		Scenario: "idle",
		Case:     fmt.Sprintf("%d databases, %s", b.idleN, window) + t.suffix(),
		Figure: fmt.Sprintf("%.2f%% of a core, RSS %s (%s anonymous), %d requests (%d writes)",
			100*core, mb(s1.rss), mb(s1.anon), requests, writes),
		Target: "≤ 0.2%, ≤ 40 MB, 0 requests",
		Met:    core <= 0.002 && s1.rss <= 40<<20 && requests == 0,
		Detail: fmt.Sprintf("one walship process, one MinIO replica per database, requests counted by a proxy in front of MinIO; "+
			"the window starts once every first snapshot is uploaded and no request has been made for 10 s (%s after start-up work ended); "+
			"CPU from /proc/PID/stat over the window; peak RSS %s; RSS counts the pages of walship's own executable that the kernel mapped (clean, shared, dropped under memory pressure), anonymous memory is what the databases cost",
			settled.Round(time.Second), mb(s1.peakRSS)),
	})
	_, err = stopWalship(w)
	return err
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

// scale measures one process replicating 1,000 databases, each written a few
// times a minute.
func (b *bench) scale() error {
	window := 60 * time.Second
	w, paths, dir, startup, err := b.manyDBs("scale", b.scaleN, b.targets()[1])
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	defer w.stop(9, time.Second)

	// Writers: each database gets a commit about every 20 s.
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
		tick := time.NewTicker(20 * time.Second / time.Duration(len(paths)))
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			p := paths[rand.N(len(paths))]
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
		return err
	}
	r0 := b.minio.writes.Load()
	time.Sleep(window)
	s1, err := sampleProc(w.pid())
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	if writeErr != nil {
		return fmt.Errorf("application: %w", writeErr)
	}
	core := (s1.cpu - s0.cpu).Seconds() / s1.at.Sub(s0.at).Seconds()
	b.add(result{
		Scenario: "scale",
		Case:     fmt.Sprintf("%d databases, each written every ~20 s", b.scaleN),
		Figure: fmt.Sprintf("start-up %.1f s, RSS %s (%s anonymous, peak RSS %s), %.1f%% of a core",
			startup.Seconds(), mb(s1.rss), mb(s1.anon), mb(s1.peakRSS), 100*core),
		Target: "RSS ≤ 300 MB",
		Met:    s1.rss <= 300<<20 && s1.peakRSS <= 300<<20,
		Detail: fmt.Sprintf("one walship process, one MinIO replica per database; start-up is from exec to every first snapshot in MinIO; "+
			"then %d commits over %s across the databases, %d uploads; RSS and CPU from /proc at the end of the window",
			commits, window, b.minio.writes.Load()-r0),
	})
	_, err = stopWalship(w)
	return err
}
