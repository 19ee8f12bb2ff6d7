package main

import (
	"math"
	"testing"
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
