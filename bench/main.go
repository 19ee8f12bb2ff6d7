// Command bench measures what walship costs an application and how fast it
// restores, against the targets of issue 5, and writes BENCHMARKS.md.
//
//	make bench                       # builds walship, installs MinIO, runs everything
//	go run ./bench -walship bin/walship -only write,restore -quick
//
// Every scenario runs the real binary beside an application process (this
// program run as "bench app"), on this machine's disk, against MinIO on
// 127.0.0.1. The machine is assumed to be shared and noisy: scenarios with a
// baseline alternate A/B rounds and quote medians and ratios.
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
)

// bench is one run of the suite.
type bench struct {
	walship string // the binary under test
	self    string // this program, run as the application
	work    string // scratch directory
	minio   *minio
	quick   bool

	rounds  int   // write-overhead rounds
	rpoN    int   // RPO samples per case
	size    int64 // restore and snapshot database size
	bigSize int64 // the RSS check's larger database; 0 skips it
	repeat  int   // timings of each first snapshot and restore, for a median
	idleN   int   // databases in the idle scenario
	scaleN  int   // databases in the scale scenario

	results []result
	notes   []string // what the run noticed, for the report
}

// result is one figure beside its target.
type result struct {
	Scenario string
	Case     string
	Figure   string
	Target   string
	Met      bool
	Detail   string
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
	out := flag.String("out", "BENCHMARKS.md", "report to write; empty writes none")
	work := flag.String("work", "", "scratch directory (default: a new one under $TMPDIR, removed at the end)")
	only := flag.String("only", "", "comma-separated scenarios to run: "+names())
	flag.BoolVar(&b.quick, "quick", false, "fewer rounds and smaller databases: a smoke test, not figures to publish")
	size := flag.String("size", "1GiB", "database size for the first snapshot and restore")
	big := flag.String("big", "4GiB", "larger database whose restore must stay within the same memory; 0 skips it")
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
	b.rounds, b.rpoN, b.idleN, b.scaleN, b.repeat = 6, 20, 100, 1000, 3
	if b.quick {
		b.rounds, b.rpoN, b.scaleN, b.repeat = 2, 4, 200, 1
		b.size, b.bigSize = min(b.size, 128<<20), 0
	}
	if b.walship, err = filepath.Abs(b.walship); err != nil {
		fatalf("%v", err)
	}
	if _, err := os.Stat(b.walship); err != nil {
		fatalf("walship binary: %v (run make build, or make bench)", err)
	}
	if b.self, err = os.Executable(); err != nil {
		fatalf("%v", err)
	}
	b.work = *work
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
	machine := describeMachine(b.work)
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
		if err := os.WriteFile(*out, []byte(b.report(machine, time.Since(started), os.Args[1:])), 0o644); err != nil {
			fatalf("%v", err)
		}
		fmt.Printf("\nwrote %s\n", *out)
	}
	if failed {
		os.Exit(1)
	}
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
