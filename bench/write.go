package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// write measures the application's commit throughput alone and with walship
// replicating to a directory and to MinIO, plain and encrypted, and to a
// directory with the metrics served (not scraped): single-row
// transactions of 100 bytes, one connection, WAL, synchronous=NORMAL, at full
// speed. Each round runs the six cases in a rotated order, so that drift in
// the machine's load falls on all of them alike.
func (b *bench) write() error {
	dur := 5 * time.Second
	if b.quick {
		dur = 2 * time.Second
	}
	targets := append(b.withLitestreamTwins(withEncrypted(b.targets())), b.targets()[0].withMetrics())
	alone := make([]float64, 0, b.rounds)
	with := make([][]float64, len(targets))
	ratios := make([][]float64, len(targets))
	cpu := make([][]float64, len(targets))
	for round := range b.rounds {
		rates := make([]float64, len(targets)+1)
		for k := range len(targets) + 1 {
			i := (k + round) % (len(targets) + 1) // 0 is the application alone
			var t *target
			if i > 0 {
				t = &targets[i-1]
			}
			rate, core, err := b.writeOnce(t, dur)
			if err != nil {
				return err
			}
			rates[i] = rate
			if i > 0 {
				cpu[i-1] = append(cpu[i-1], core)
			}
		}
		alone = append(alone, rates[0])
		for i := range targets {
			with[i] = append(with[i], rates[i+1])
			ratios[i] = append(ratios[i], rates[i+1]/rates[0])
		}
		fmt.Printf("  round %d: alone %s commits/s", round+1, thousands(rates[0]))
		for i, t := range targets {
			fmt.Printf(", %s %s (%.3f)", t.label(), thousands(rates[i+1]), ratios[i][round])
		}
		fmt.Println()
	}
	for i, t := range targets {
		if t.litestream {
			continue // its figures go beside walship's
		}
		r := median(ratios[i])
		var ls *vs
		lsNote := ""
		if j := lsTwin(targets, t); j >= 0 {
			l := median(ratios[j])
			ls = &vs{figure: fmt.Sprintf("%.3f (%s commits/s)", l, thousands(median(with[j]))), ratio: ratioOf(r, l), of: "ratios; higher is walship ahead"}
			lsNote = fmt.Sprintf("; Litestream (`litestream replicate -config`, default settings, to the same kind of replica), its rounds alternating with walship's in the same rotation: %.0f%% of a core, per-round ratios %s",
				100*median(cpu[j]), fmtList(ratios[j], "%.3f"))
		}
		g := writeGoal(t, r)
		b.add(result{
			LS:       ls,
			Scenario: "write overhead",
			Case:     "replicating to " + t.label(),
			Figure:   fmt.Sprintf("%.3f (%s vs %s commits/s)", r, thousands(median(with[i])), thousands(median(alone))),
			Target:   g.target,
			Met:      g.met,
			Detail: fmt.Sprintf("median over %d rounds of (commits/s with walship) / (commits/s alone) in the same round, %s each; "+
				"one connection, one 100-byte row per transaction, WAL, synchronous=NORMAL, a new database each time; "+
				"walship used %.0f%% of a core (median) while the application wrote; per-round ratios %s%s",
				b.rounds, dur, 100*median(cpu[i]), fmtList(ratios[i], "%.3f"), lsNote),
		})
	}
	for i, t := range targets {
		if t.key == "" && !t.metrics {
			continue
		}
		plain := slices.IndexFunc(targets, func(u target) bool { return u.name == t.name && u.key == "" && !u.metrics && !u.litestream })
		what := "encryption cost"
		if t.metrics {
			what = "metrics cost"
		}
		b.addCost(what, "write throughput, replicating to "+t.name, "commits/s", with[plain], with[i],
			"the application's commits/s with walship, as in write overhead above")
	}
	// Where walship's share of the second core goes while the application
	// writes, in one more round apart from the timed ones.
	for _, t := range b.targets() {
		what := "replicating to " + t.name + " while the application writes at full speed"
		t.profile = b.profilePath(what)
		_, _, err := b.writeOnce(&t, dur)
		b.addProfile(what, t.profile, err)
	}
	return nil
}

// writeOnce runs the application at full speed for dur on a new database,
// with walship replicating to t unless t is nil, and returns the commits per
// second and the share of a core walship used.
func (b *bench) writeOnce(t *target, dur time.Duration) (float64, float64, error) {
	dir := b.dir("write")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.db")
	if err := newDB(path); err != nil {
		return 0, 0, err
	}
	var w *proc
	if t != nil {
		key := filepath.Base(dir)
		cfg := filepath.Join(dir, "replicate.yml")
		if err := t.writeToolConfig(cfg, path, key, false, ""); err != nil {
			return 0, 0, err
		}
		var err error
		if w, err = t.run(dir, 0, cfg); err != nil {
			return 0, 0, err
		}
		defer w.stop(9, time.Second)
		if err := t.waitSnapshots(key, 1, w, time.Minute); err != nil {
			return 0, 0, err
		}
	}
	var before sample
	if w != nil {
		before, _ = sampleProc(w.pid())
	}
	app, err := start("app", 0, dir, nil, b.self, "app", "-db", path, "-duration", dur.String())
	if err != nil {
		return 0, 0, err
	}
	if err := app.wait(dur + time.Minute); err != nil {
		return 0, 0, err
	}
	r, err := app.appResult()
	if err != nil {
		return 0, 0, fmt.Errorf("application's result: %w", err)
	}
	core := 0.0
	if w != nil {
		after, _ := sampleProc(w.pid())
		core = (after.cpu - before.cpu).Seconds() / after.at.Sub(before.at).Seconds()
		if _, err := stopWalship(w); err != nil {
			return 0, 0, err
		}
	}
	return float64(r.Commits) / r.Seconds, core, nil
}

func fmtList(xs []float64, format string) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf(format, x)
	}
	return s
}
