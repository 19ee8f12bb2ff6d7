package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// profileEnv is the variable that makes walship write a CPU profile of
// itself (cmd/walship/profile.go).
const profileEnv = "WALSHIP_CPUPROFILE"

// profiled is what a CPU profile taken in the run shows: where the time of
// a scenario the targets judge goes, so that a target not met can be
// explained from the same run (issue 17).
type profiled struct {
	what     string        // the run profiled
	wall     time.Duration // the profile's duration
	cpu      time.Duration // CPU time sampled over it
	shares   []share       // CPU by kind of work, largest first
	top      []share       // the functions with the most CPU of their own
	err      string        // why there is no profile, if there is none
	fileName string        // the profile's file, kept when -work is given
}

// share is part of a profile's CPU time.
type share struct {
	name string
	frac float64
}

// kinds sorts a profile's functions into the kinds of work the analysis
// speaks of; the first whose prefix matches wins, the rest is "other".
var kinds = []struct {
	name     string
	prefixes []string
}{
	{"CRC-64 (page and file checksums)", []string{"hash/crc64.", "github.com/walship/walship/internal/crc64iso."}},
	{"LZ4", []string{"github.com/pierrec/lz4"}},
	{"WAL checksum (every frame verified)", []string{"github.com/walship/walship/internal/wal.Checksum"}},
	{"SQLite (reads, checkpoints, quick_check)", []string{"modernc.org/"}},
	{"SHA-256 and MD5 (request signing, content checksums)", []string{"crypto/sha256.", "crypto/internal/fips140/sha256.", "crypto/md5.", "crypto/internal/fips140deps", "hash/crc32."}},
	{"encryption", []string{"crypto/aes.", "crypto/cipher.", "crypto/internal/fips140/aes", "golang.org/x/crypto/chacha20", "golang.org/x/crypto/internal/poly1305"}},
	{"system calls (read, write, fsync, network)", []string{"syscall.", "internal/runtime/syscall/", "runtime/internal/syscall/", "internal/poll."}},
	{"memory copies and clears", []string{"runtime.memmove", "runtime.memclrNoHeapPointers"}},
	{"allocation and garbage collection", []string{"runtime.mallocgc", "runtime.scanobject", "runtime.greyobject", "runtime.findObject", "runtime.gc", "runtime.(*gcWork)", "runtime.(*mspan)", "runtime.(*mheap)", "runtime.(*mcache)", "runtime.markBits", "runtime.sweepone", "runtime.(*sweepLocked)", "runtime.heapBits", "runtime.nextFreeFast", "runtime.bgsweep", "runtime.wbBuf", "runtime.bulkBarrier", "runtime.typePointers", "runtime.(*gcBits)", "runtime.madvise", "runtime.sysUnused"}},
	{"Go scheduler and runtime", []string{"runtime.", "internal/runtime/"}},
	{"HTTP and the S3 SDK", []string{"net/http.", "net.", "github.com/aws/", "bufio."}},
}

func kindOf(fn string) string {
	for _, k := range kinds {
		for _, p := range k.prefixes {
			if strings.HasPrefix(fn, p) {
				return k.name
			}
		}
	}
	return "other"
}

// profileRun runs walship once more with args under a CPU profile, untimed
// and apart from the timed rounds (profiling costs a few percent), and adds
// what the profile shows to the report. A profile that fails is noted, not
// fatal: it explains figures, it is not one.
func (b *bench) profileRun(dir, what string, args ...string) {
	path := b.profilePath(what)
	dropCaches()
	p, err := start("profile", 0, dir, append(b.minio.env(), profileEnv+"="+path), b.walship, args...)
	if err == nil {
		err = p.wait(30 * time.Minute)
	}
	b.addProfile(what, path, err)
}

// profilePath is where the profile of what is written: in the work
// directory, which -work keeps.
func (b *bench) profilePath(what string) string {
	return filepath.Join(b.work, "profile-"+slug(what)+".pprof")
}

// addProfile summarizes the profile at path (if err is nil) into the
// report.
func (b *bench) addProfile(what, path string, err error) {
	pr := profiled{what: what}
	if err == nil {
		pr, err = summarizeProfile(b.walship, path)
		pr.what = what
	}
	if err != nil {
		pr.err = err.Error()
		fmt.Printf("  profile of %s: %v\n", what, err)
	} else {
		fmt.Printf("  profile of %s: %s\n", what, pr.line())
		if b.keepWork {
			pr.fileName = path
		}
	}
	b.profiles = append(b.profiles, pr)
}

// summarizeProfile reads the CPU profile at path of the binary bin with
// `go tool pprof -top`.
func summarizeProfile(bin, path string) (profiled, error) {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodefraction=0", "-nodecount=100000", bin, path).CombinedOutput()
	if err != nil {
		return profiled{}, fmt.Errorf("go tool pprof: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return parseTop(string(out))
}

// parseTop reads `go tool pprof -top` output: the Duration line, then one
// line per function, "flat flat% sum% cum cum% name".
func parseTop(out string) (profiled, error) {
	var pr profiled
	byKind := map[string]float64{}
	var fns []share
	var total float64
	seenHeader := false
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if d, ok := strings.CutPrefix(line, "Duration: "); ok {
			// "Duration: 2.61s, Total samples = 3.62s (138.70%)"
			wall, rest, _ := strings.Cut(d, ",")
			pr.wall, _ = time.ParseDuration(strings.TrimSpace(wall))
			if _, s, ok := strings.Cut(rest, "= "); ok {
				s, _, _ = strings.Cut(s, " ")
				pr.cpu, _ = time.ParseDuration(s)
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == "flat" {
			seenHeader = true
			continue
		}
		if !seenHeader || len(f) < 6 {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64)
		if err != nil {
			continue
		}
		name := strings.Join(f[5:], " ")
		byKind[kindOf(name)] += pct / 100
		fns = append(fns, share{name, pct / 100})
		total += pct / 100
	}
	if !seenHeader || pr.cpu == 0 {
		return pr, fmt.Errorf("the profile holds no samples")
	}
	for k, v := range byKind {
		pr.shares = append(pr.shares, share{k, v})
	}
	bySize := func(a, b share) int {
		if a.frac != b.frac {
			if a.frac > b.frac {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	}
	slices.SortFunc(pr.shares, bySize)
	slices.SortFunc(fns, bySize)
	pr.top = fns[:min(len(fns), 6)]
	return pr, nil
}

// line is the profile in one line of the report.
func (pr profiled) line() string {
	if pr.err != "" {
		return "no profile: " + pr.err
	}
	var s strings.Builder
	fmt.Fprintf(&s, "%.1f s of CPU over %.1f s (%.2f cores): ", pr.cpu.Seconds(), pr.wall.Seconds(), pr.cpu.Seconds()/pr.wall.Seconds())
	for i, sh := range pr.shares {
		if sh.frac < 0.01 {
			break
		}
		if i > 0 {
			s.WriteString(", ")
		}
		fmt.Fprintf(&s, "%s %.0f%%", sh.name, 100*sh.frac)
	}
	s.WriteString("; the functions with the most: ")
	for i, sh := range pr.top {
		if i > 0 {
			s.WriteString(", ")
		}
		fmt.Fprintf(&s, "`%s` %.0f%%", sh.name, 100*sh.frac)
	}
	if pr.fileName != "" {
		fmt.Fprintf(&s, " (profile: %s)", pr.fileName)
	}
	return s.String()
}

// slug makes what a file name.
func slug(what string) string {
	var s strings.Builder
	for _, r := range strings.ToLower(what) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			s.WriteRune(r)
		case s.Len() > 0 && !strings.HasSuffix(s.String(), "-"):
			s.WriteByte('-')
		}
	}
	return strings.TrimSuffix(s.String(), "-")
}
