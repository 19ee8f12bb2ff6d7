package main

import (
	"strings"
	"testing"
	"time"
)

const sampleTop = `File: walship
Build ID: bb348f0fdb8ee19a51b6c73ae7b3895c5199e019
Type: cpu
Time: 2026-12-06 08:27:14 UTC
Duration: 2.50s, Total samples = 3.50s (140.00%)
Showing nodes accounting for 3.50s, 100% of 3.50s total
      flat  flat%   sum%        cum   cum%
     1.05s 30.00% 30.00%      1.05s 30.00%  hash/crc64.update
     0.70s 20.00% 50.00%      0.70s 20.00%  github.com/pierrec/lz4/v4/internal/lz4block.decodeBlock
     0.35s 10.00% 60.00%      0.35s 10.00%  internal/runtime/syscall/linux.Syscall6
     0.35s 10.00% 70.00%      0.35s 10.00%  modernc.org/sqlite/lib.Xsqlite3BtreeNext
     0.35s 10.00% 80.00%      0.35s 10.00%  runtime.memmove
     0.35s 10.00% 90.00%      0.35s 10.00%  runtime.scanobject
     0.35s 10.00%   100%      0.35s 10.00%  github.com/walship/walship/restore.(*writer).run
         0     0%   100%      1.05s 30.00%  github.com/superfly/ltx.(*Decoder).DecodePage
`

func TestParseTop(t *testing.T) {
	pr, err := parseTop(sampleTop)
	if err != nil {
		t.Fatal(err)
	}
	if pr.wall != 2500*time.Millisecond || pr.cpu != 3500*time.Millisecond {
		t.Fatalf("wall %v, cpu %v; want 2.5s and 3.5s", pr.wall, pr.cpu)
	}
	want := map[string]float64{
		"CRC-64 (page and file checksums)": 0.30,
		"LZ4":                              0.20,
		"system calls (read, write, fsync, network)": 0.10,
		"SQLite (reads, checkpoints, quick_check)":   0.10,
		"memory copies and clears":                   0.10,
		"allocation and garbage collection":          0.10,
		"other":                                      0.10,
	}
	if len(pr.shares) != len(want) {
		t.Fatalf("shares %v; want %d kinds", pr.shares, len(want))
	}
	for _, sh := range pr.shares {
		if w, ok := want[sh.name]; !ok || abs(sh.frac-w) > 1e-9 {
			t.Errorf("share %q = %.3f; want %.3f", sh.name, sh.frac, w)
		}
	}
	if pr.shares[0].name != "CRC-64 (page and file checksums)" || pr.top[0].name != "hash/crc64.update" {
		t.Errorf("largest first: shares %v, top %v", pr.shares[0], pr.top[0])
	}
	// A function with no CPU of its own (flat 0) adds nothing.
	for _, sh := range pr.top {
		if strings.Contains(sh.name, "DecodePage") && sh.frac != 0 {
			t.Errorf("DecodePage has flat %.2f; want 0", sh.frac)
		}
	}
	line := pr.line()
	for _, s := range []string{"3.5 s of CPU over 2.5 s (1.40 cores)", "CRC-64 (page and file checksums) 30%", "`hash/crc64.update` 30%"} {
		if !strings.Contains(line, s) {
			t.Errorf("line %q lacks %q", line, s)
		}
	}
}

func TestParseTopWithoutSamples(t *testing.T) {
	if _, err := parseTop("File: walship\nType: cpu\n"); err == nil {
		t.Fatal("a profile with no samples was summarized")
	}
}

func TestSlug(t *testing.T) {
	if got := slug("restore, 1088 MB from MinIO, -integrity-check none"); got != "restore-1088-mb-from-minio-integrity-check-none" {
		t.Fatalf("slug = %q", got)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
