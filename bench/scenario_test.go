package main

import (
	"fmt"
	"math"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/internal/testserver"
)

func TestMedianAndPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	if m := median(xs); m != 3 {
		t.Errorf("median(%v) = %v; want 3", xs, m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median of an even count = %v; want 2.5", m)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is a number")
	}
	if xs[0] != 5 {
		t.Error("median sorted its argument")
	}
	var twenty []float64
	for i := range 20 {
		twenty = append(twenty, float64(i+1))
	}
	for _, c := range []struct{ p, want float64 }{{90, 18}, {99, 20}, {100, 20}, {50, 10}, {0, 1}} {
		if got := percentile(twenty, c.p); got != c.want {
			t.Errorf("p%v of 1..20 = %v; want %v (nearest rank)", c.p, got, c.want)
		}
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 83305.4: "83,305", 1234567: "1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q; want %q", in, got, want)
		}
	}
}

func TestEncryptedTwins(t *testing.T) {
	b := &bench{keyFile: "/k/key", minio: &minio{SuiteMinIO: &testserver.SuiteMinIO{Bucket: "bench", Endpoint: "http://127.0.0.1:9000"}}}
	ts := withEncrypted(b.targets())
	var labels []string
	for _, u := range ts {
		labels = append(labels, u.label())
	}
	if got, want := strings.Join(labels, "; "), "directory; directory, encrypted; MinIO; MinIO, encrypted"; got != want {
		t.Fatalf("targets %q; want %q", got, want)
	}
	if ts[0].keyArgs() != nil || strings.Contains(ts[0].yaml("k", false), "encryption") {
		t.Error("a plain target is given a key")
	}
	if ts[0].slug() == ts[1].slug() {
		t.Error("twins share their replicas")
	}
	for _, u := range []target{ts[1], ts[3]} {
		if got := u.keyArgs(); len(got) != 2 || got[0] != "-encryption-key-path" || got[1] != "/k/key" {
			t.Errorf("%s: key flags %q", u.label(), got)
		}
		if !strings.HasSuffix(u.yaml("k", false), "\n        encryption-key-path: /k/key") {
			t.Errorf("%s: replica block %q has no key", u.label(), u.yaml("k", false))
		}
	}
}

func TestAlternate(t *testing.T) {
	b := &bench{repeat: 3}
	var order []int
	runs, err := b.alternate(2, func(i, round int) (timing, error) {
		order = append(order, i)
		return timing{took: time.Duration(10*round + i)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(order), "[0 1 1 0 0 1]"; got != want {
		t.Errorf("order %s; want %s", got, want)
	}
	for i, rs := range runs {
		for round, r := range rs {
			if r.took != time.Duration(10*round+i) {
				t.Errorf("case %d, round %d: got the timing of another run", i, round)
			}
		}
	}
}

// A child's peak RSS is its own, not the benchmark's: wait4's ru_maxrss
// would give this test's 64 MB to a sleep.
func TestChildPeakRSSIsItsOwn(t *testing.T) {
	ballast := make([]byte, 64<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	p, err := start("sleep", 0, t.TempDir(), nil, "/bin/sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); p.hwm.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			p.stop(syscall.SIGKILL, time.Minute)
			t.Fatal("no VmHWM read from a running child in 30 s")
		}
	}
	p.stop(syscall.SIGKILL, time.Minute)
	if peak := p.usage().peakRSS; peak <= 0 || peak > 32<<20 {
		t.Errorf("sleep's peak RSS %d bytes; want its own few MB, not this test's %d MB", peak, len(ballast)>>20)
	}
	if hwm, anon := readPeaks(p.pid()); hwm != 0 || anon != 0 {
		t.Error("a process that has exited has a VmHWM")
	}
}
