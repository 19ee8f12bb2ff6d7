// Command torture is walship's torture suite: thousands of short trials
// that kill, starve, damage and race the real walship binary while an
// application writes, and prove after each that every restore is exactly a
// state the application committed. It writes RELIABILITY.md.
//
//	make torture                                   # builds walship, installs MinIO, runs everything
//	go run ./torture -walship bin/walship -only kill,damage -trials 50
//	go run ./torture -walship bin/walship -seed 42 -replay kill:17
//
// The application is this program run as "torture app" (see app.go). Its
// history is derived from a seed, so a database restored at any TXID is
// checked against the history without keeping a copy of it (history.go,
// check.go). Each trial's randomness derives from (seed, kind, trial index)
// alone: -replay runs one trial again, with its log printed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/walship/walship/internal/machine"
)

// suite is one run: the binaries, the settings every trial reads, and the
// processes and mounts to clean up.
type suite struct {
	walship    string // the binary under test
	self       string // this program, run as the application
	work       string // scratch directory
	seed       uint64
	trials     int // trials of each kind
	parallel   int
	exactEvery int
	keepAll    bool
	verbose    bool // print each trial's log as it happens (-replay)
	args       []string

	ctx    context.Context
	procs  procSet
	mounts mountSet
	minio  *minio // started by the proxy kind

	mu     sync.Mutex
	failed bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "app" {
		os.Exit(appMain(os.Args[2:]))
	}
	os.Exit(run())
}

func run() int {
	s := &suite{args: os.Args[1:]}
	flag.StringVar(&s.walship, "walship", "bin/walship", "the walship binary to torture")
	flag.IntVar(&s.trials, "trials", 1000, "trials of each kind")
	only := flag.String("only", "", "comma-separated kinds to run: "+strings.Join(kindNames(), ","))
	seed := flag.String("seed", "", "the run's seed (default: from the clock); printed at start and in every failure")
	replay := flag.String("replay", "", "run one trial again, kind:trial (e.g. kill:17), with the seed of the failing run")
	flag.IntVar(&s.parallel, "parallel", 2*runtime.NumCPU(), "trials running at once")
	flag.IntVar(&s.exactEvery, "exact-every", 25, "every how many trials (and in the last) a kill, proxy or restore-race trial ends with the byte-for-byte comparison")
	work := flag.String("work", "", "scratch directory (default: a new one under $TMPDIR, removed at the end unless a trial failed)")
	out := flag.String("out", "RELIABILITY.md", "the report to write; empty writes none (a -replay writes none)")
	flag.BoolVar(&s.keepAll, "keep", false, "keep every trial's scratch directory, not only failed ones")
	flag.Parse()
	if flag.NArg() > 0 {
		return usage("unexpected arguments: %s", strings.Join(flag.Args(), " "))
	}
	if s.trials < 1 || s.parallel < 1 || s.exactEvery < 1 {
		return usage("-trials, -parallel and -exact-every must be at least 1")
	}
	s.seed = uint64(time.Now().UnixNano())
	if *seed != "" {
		v, err := strconv.ParseUint(*seed, 10, 64)
		if err != nil {
			return usage("-seed %q: want a number", *seed)
		}
		s.seed = v
	}
	run, err := selectKinds(*only)
	if err != nil {
		return usage("%v", err)
	}
	var target *replayTarget
	if *replay != "" {
		rt, err := parseReplay(*replay, kindNames())
		if err != nil {
			return usage("%v", err)
		}
		target, run, *out, s.verbose, s.keepAll = &rt, []*kind{kindByName(rt.kind)}, "", true, true
	}
	if s.walship, err = filepath.Abs(s.walship); err != nil {
		return fail("%v", err)
	}
	if _, err := os.Stat(s.walship); err != nil {
		return fail("walship binary: %v (run make build, or make torture)", err)
	}
	if s.self, err = os.Executable(); err != nil {
		return fail("%v", err)
	}
	removeWork := false
	if s.work = *work; s.work == "" {
		if s.work, err = os.MkdirTemp("", "walship-torture-"); err != nil {
			return fail("%v", err)
		}
		removeWork = true
	} else if err := os.MkdirAll(s.work, 0o755); err != nil {
		return fail("%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s.ctx = ctx
	defer s.shutdown()

	started := time.Now()
	fmt.Printf("torture: seed %d; walship %s; work %s\n", s.seed, s.walship, s.work)
	facts := machine.Describe(s.walship, "RELIABILITY.md")
	var results []*kindResult
	for _, k := range run {
		indices := make([]int, s.trials)
		for i := range indices {
			indices[i] = i
		}
		if target != nil {
			indices = []int{target.index}
		}
		results = append(results, s.runKind(k, indices))
		if ctx.Err() != nil {
			break
		}
	}
	took := time.Since(started)
	s.shutdown()
	if target != nil {
		fmt.Printf("\nthe trial's directory: %s\n", filepath.Join(s.work, fmt.Sprintf("%s-%04d", target.kind, target.index)))
	}
	fmt.Println()
	fmt.Print(resultTable(results))
	if ctx.Err() != nil {
		fmt.Printf("\ninterrupted; scratch directory kept: %s\n", s.work)
		return 1
	}
	failed := s.hasFailed() || anyNotRun(results)
	if *out != "" {
		rep := report{seed: s.seed, args: s.args, machine: facts, date: started, took: took, kinds: results, trials: s.trials, exactEvery: s.exactEvery, replay: s.replayCommand}
		if _, err := os.Stat(analysisPath); err == nil {
			rep.analysis = analysisPath
		}
		if err := os.WriteFile(*out, []byte(rep.render()), 0o644); err != nil {
			return fail("%v", err)
		}
		fmt.Printf("\nwrote %s\n", *out)
	}
	if failed {
		fmt.Printf("\nseed %d: failures above; scratch directory kept: %s\n", s.seed, s.work)
		return 1
	}
	if removeWork && !s.keepAll {
		os.RemoveAll(s.work)
	}
	return 0
}

// analysisPath is the maintainers' reading of the latest run's failures,
// which the report links to when it exists.
const analysisPath = "torture/ANALYSIS.md"

// replayCommand is the command line that runs trial index of kind again.
func (s *suite) replayCommand(kind string, index int) string {
	cmd := fmt.Sprintf("go run ./torture -walship %s -seed %d", relPath(s.walship), s.seed)
	if s.trials != 1000 {
		cmd += fmt.Sprintf(" -trials %d", s.trials)
	}
	if s.exactEvery != 25 {
		cmd += fmt.Sprintf(" -exact-every %d", s.exactEvery)
	}
	return cmd + fmt.Sprintf(" -replay %s:%d", kind, index)
}

// relPath shortens a path under the working directory.
func relPath(p string) string {
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
	}
	return p
}

func (s *suite) markFailed() {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
}

func (s *suite) hasFailed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func anyNotRun(results []*kindResult) bool {
	for _, r := range results {
		if r.notRun != "" {
			return true
		}
	}
	return false
}

// shutdown kills every child, unmounts every tmpfs and stops MinIO. It
// can run more than once.
func (s *suite) shutdown() {
	s.procs.killAll()
	s.mounts.unmountAll()
	if s.minio != nil {
		s.minio.stop()
		s.minio = nil
	}
}

func usage(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "torture: "+format+"\n", args...)
	flag.Usage()
	return 2
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "torture: "+format+"\n", args...)
	return 1
}
