// Command bench measures what walship costs an application and how fast it
// restores, against the targets of issue 17 (issue 5's where it sets none;
// targets.go holds them all), beside Litestream and the machine's own
// limits measured in the same run, and writes BENCHMARKS.md.
//
//	make bench                       # builds walship, installs MinIO, runs everything
//	go run ./bench -walship bin/walship -only write,restore -quick
//
// Every scenario runs the real binary beside an application process (this
// program run as "bench app"), on this machine's disk, against MinIO on
// 127.0.0.1; write, RPO, first snapshot and restore also to an encrypted
// replica. The machine is assumed to be shared and noisy: scenarios with a
// baseline alternate A/B rounds and quote medians and ratios, and so do an
// encrypted replica with its plain twin and Litestream with walship.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/walship/walship/internal/bytesize"
	"github.com/walship/walship/internal/machine"
)

// bench is one run of the suite.
type bench struct {
	walship    string // the binary under test
	litestream string // Litestream, run beside it; "" measures walship alone
	limits     limits // the machine's, measured at the start of the run
	self       string // this program, run as the application
	work       string // scratch directory
	minio      *minio
	quick      bool
	keyFile    string // the encryption key of encrypted replicas

	rounds  int   // write-overhead rounds
	rpoN    int   // RPO samples per case
	size    int64 // restore and snapshot database size
	bigSize int64 // the RSS check's larger database; 0 skips it
	repeat  int   // timings of each first snapshot and restore, for a median
	idleN   int   // databases in the idle scenario
	scaleN  int   // databases in the scale scenario

	scaleWindow time.Duration // how long the scale scenario writes

	results  []result
	notes    []string   // what the run noticed, for the report
	profiles []profiled // CPU profiles taken in the run
	keepWork bool       // -work was given: the scratch directory stays
}

// result is one figure beside its target.
type result struct {
	Scenario string
	Case     string
	Figure   string
	Target   string
	Met      bool
	Detail   string
	LS       *vs    // Litestream's figure in the same run; nil where it has none
	Limit    string // the figure as a share of the machine's limit, if it is a rate
}

// scenario is one part of the suite, run by name with -only.
type scenario struct {
	name string
	run  func(*bench) error
}

var scenarios = []scenario{
	{"write", (*bench).write},
	{"rpo", (*bench).rpo},
	{"bulk", (*bench).bulk}, // first snapshot and restore share their databases
	{"idle", (*bench).idle},
	{"scale", (*bench).scale},
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "app" {
		os.Exit(appMain(os.Args[2:]))
	}
	b := &bench{}
	flag.StringVar(&b.walship, "walship", "bin/walship", "walship binary to measure")
	ls := flag.String("litestream", "", "Litestream "+litestreamVersion+" binary to measure beside walship (default: the one scripts/install-test-servers installs); none measures walship alone")
	out := flag.String("out", "BENCHMARKS.md", "report to write; empty writes none")
	work := flag.String("work", "", "scratch directory (default: a new one under $TMPDIR, removed at the end)")
	only := flag.String("only", "", "comma-separated scenarios to run: "+names())
	flag.BoolVar(&b.quick, "quick", false, "fewer rounds and smaller databases: a smoke test, not figures to publish")
	size := flag.String("size", "1GiB", "database size for the first snapshot and restore")
	big := flag.String("big", "10GiB", "larger database (issue 17's 10 GB) whose first snapshot and restore must stay within the same memory; needs 3 times its size free; 0 skips it (-quick does unless it is given)")
	repeat := flag.Int("repeat", 0, "timings of each first snapshot and restore, for a median (default 3, 1 with -quick)")
	flag.Parse()

	var err error
	if b.size, err = bytesize.Parse(*size); err != nil {
		fatalf("-size: %v", err)
	}
	if *big != "0" {
		if b.bigSize, err = bytesize.Parse(*big); err != nil {
			fatalf("-big: %v", err)
		}
	}
	b.rounds, b.rpoN, b.idleN, b.scaleN, b.repeat = 6, 20, 100, scaleTargetN, 3
	b.scaleWindow = 3 * scaleEvery
	if b.quick {
		b.rounds, b.rpoN, b.scaleN, b.repeat = 2, 4, 200, 1
		b.scaleWindow = 2 * scaleEvery
		b.size = min(b.size, 128<<20)
		if !flagSet("big") {
			b.bigSize = 0 // unless asked for, e.g. -big 512MiB to try it
		}
	}
	if *repeat > 0 {
		b.repeat = *repeat
	}
	if b.walship, err = filepath.Abs(b.walship); err != nil {
		fatalf("%v", err)
	}
	if _, err := os.Stat(b.walship); err != nil {
		fatalf("walship binary: %v (run make build, or make bench)", err)
	}
	if *ls != "none" {
		if b.litestream, err = findLitestream(*ls); err != nil {
			fatalf("%v", err)
		}
		if b.litestream, err = filepath.Abs(b.litestream); err != nil {
			fatalf("%v", err)
		}
	}
	if b.self, err = os.Executable(); err != nil {
		fatalf("%v", err)
	}
	b.work, b.keepWork = *work, *work != ""
	if b.work == "" {
		if b.work, err = os.MkdirTemp("", "walship-bench-"); err != nil {
			fatalf("%v", err)
		}
		defer os.RemoveAll(b.work)
	}

	run := scenarios
	if *only != "" {
		run = nil
		for _, name := range strings.Split(*only, ",") {
			i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == name })
			if i < 0 {
				fatalf("-only: unknown scenario %q (have %s)", name, names())
			}
			run = append(run, scenarios[i])
		}
	}

	started := time.Now()
	if b.minio, err = startMinIO(b.work); err != nil {
		fatalf("%v", err)
	}
	defer b.minio.stop()
	if b.keyFile, err = b.keygen(); err != nil {
		fatalf("%v", err)
	}
	facts := machine.Describe(b.walship, "BENCHMARKS.md")
	fmt.Println("== machine's limits")
	b.limits = measureLimits(b.work)
	fmt.Printf("  %s\n", b.limits)
	failed := false
	for _, s := range run {
		fmt.Printf("== %s\n", s.name)
		if err := s.run(b); err != nil {
			fmt.Fprintf(os.Stderr, "bench %s: %v\n", s.name, err)
			b.notes = append(b.notes, fmt.Sprintf("Scenario %s failed: %v", s.name, err))
			failed = true
		}
	}
	fmt.Println()
	fmt.Print(b.table())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(b.report(facts, time.Since(started), os.Args[1:])), 0o644); err != nil {
			fatalf("%v", err)
		}
		fmt.Printf("\nwrote %s\n", *out)
	}
	if failed {
		os.Exit(1)
	}
}

// flagSet is whether the flag name was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func names() string {
	var s []string
	for _, sc := range scenarios {
		s = append(s, sc.name)
	}
	return strings.Join(s, ",")
}

func (b *bench) add(r result) {
	b.results = append(b.results, r)
	mark := "MET"
	if !r.Met {
		mark = "NOT MET"
	}
	fmt.Printf("  %-16s %-28s %-40s target %-14s %s\n", r.Scenario, r.Case, r.Figure, r.Target, mark)
	if r.LS != nil {
		f, ratio := r.LS.cells()
		fmt.Printf("  %-16s %-28s Litestream: %s; walship/Litestream %s\n", "", "", f, ratio)
	}
}

// addCost reports, as scenario (what encryption or the metrics cost), the
// cost in what: the median over rounds of variant/plain, the figures (unit:
// higher is better) of a replica with the variant and of its plain twin in
// the same round; how says how they are taken.
func (b *bench) addCost(scenario, what, unit string, plain, variant []float64, how string) {
	var ratios []float64
	for r := range min(len(plain), len(variant)) {
		ratios = append(ratios, variant[r]/plain[r])
	}
	m := median(ratios)
	g := costGoal(m)
	b.add(result{
		Scenario: scenario,
		Case:     what,
		Figure:   fmt.Sprintf("%.3f (%s vs %s %s)", m, thousands(median(variant)), thousands(median(plain)), unit),
		Target:   g.target,
		Met:      g.met,
		Detail: fmt.Sprintf("median over %d rounds of (%s, the variant) / (%s, the plain replica) in the same round, the two alternating; %s; per-round ratios %s",
			len(ratios), unit, unit, how, fmtList(ratios, "%.3f")),
	})
}

// keygen writes the run's encryption key with walship keygen, as a user
// would, and returns its path.
func (b *bench) keygen() (string, error) {
	dir := b.dir("key")
	p, err := start("keygen", 0, dir, nil, b.walship, "keygen", filepath.Join(dir, "key"))
	if err != nil {
		return "", err
	}
	if err := p.wait(time.Minute); err != nil {
		return "", fmt.Errorf("walship keygen: %w", err)
	}
	return filepath.Join(dir, "key"), nil
}

// dir returns a new empty directory under the scratch directory.
func (b *bench) dir(name string) string {
	d, err := os.MkdirTemp(b.work, name+"-")
	if err != nil {
		fatalf("%v", err)
	}
	return d
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}
