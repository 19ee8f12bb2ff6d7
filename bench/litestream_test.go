package main

import (
	"math"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"

	"github.com/walship/walship/internal/testserver"
)

func TestRatioOf(t *testing.T) {
	if got := ratioOf(300, 150); got != 2 {
		t.Errorf("ratioOf(300, 150) = %v; want 2", got)
	}
	for _, c := range [][2]float64{{1, 0}, {math.NaN(), 1}, {1, math.NaN()}} {
		if got := ratioOf(c[0], c[1]); !math.IsNaN(got) {
			t.Errorf("ratioOf(%v, %v) = %v; want NaN (no ratio to show)", c[0], c[1], got)
		}
	}
}

func TestOfLimit(t *testing.T) {
	if got, want := ofLimit(450, 900, "the disk"), "50% of the disk"; got != want {
		t.Errorf("ofLimit = %q; want %q", got, want)
	}
	if got := ofLimit(450, 0, "the disk"); got != "—" {
		t.Errorf("an unmeasured limit gives %q; want a dash", got)
	}
}

func TestLimitsDisk(t *testing.T) {
	if got := (limits{diskWrite: 900, diskRead: 1500}).disk(); got != 900 {
		t.Errorf("disk limit %v; want the slower of write and read, 900", got)
	}
	if got := (limits{diskWrite: 900, diskRead: 500}).disk(); got != 500 {
		t.Errorf("disk limit %v; want the slower of write and read, 500", got)
	}
}

func TestTableColumns(t *testing.T) {
	rs := []result{
		{Scenario: "restore", Case: "1 GB from directory", Figure: "500 MB/s", Target: "≥ 400 MB/s", Met: true,
			LS: &vs{figure: "100 MB/s", ratio: 5, of: "MB/s"}, Limit: "50% of the disk"},
		{Scenario: "restore", Case: "encrypted", Figure: "300 MB/s", Target: "≥ 400 MB/s"},
		{Scenario: "idle", Case: "100", Figure: "0%", Target: "0", Met: true, LS: &vs{figure: "0%", ratio: math.NaN()}},
	}
	lines := strings.Split(strings.TrimSpace(table(rs)), "\n")
	if len(lines) != 5 {
		t.Fatalf("table has %d lines; want a header, a rule and 3 rows:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[0], "Litestream "+litestreamVersion) || !strings.Contains(lines[0], "walship / Litestream") {
		t.Errorf("header %q names neither Litestream's version nor the ratio", lines[0])
	}
	cols := strings.Count(lines[0], "|")
	for _, l := range lines[1:] {
		if n := strings.Count(l, "|"); n != cols {
			t.Errorf("row %q has %d cells' bars; the header has %d", l, n, cols)
		}
	}
	for i, want := range []string{
		"| restore | 1 GB from directory | 500 MB/s | ≥ 400 MB/s | met | 100 MB/s | 5.00 (MB/s) | 50% of the disk |",
		"| restore | encrypted | 300 MB/s | ≥ 400 MB/s | **not met** | — | — | — |",
		"| idle | 100 | 0% | 0 | met | 0% | — | — |",
	} {
		if lines[2+i] != want {
			t.Errorf("row %d:\n got %s\nwant %s", i, lines[2+i], want)
		}
	}
}

func TestLitestreamTwins(t *testing.T) {
	b := &bench{keyFile: "/k/key", litestream: "/bin/litestream", minio: &minio{SuiteMinIO: &testserver.SuiteMinIO{Bucket: "bench", Endpoint: "http://127.0.0.1:9000"}, proxy: "http://127.0.0.1:9001"}}
	ts := b.withLitestreamTwins(append(withEncrypted(b.targets()), b.targets()[0].withMetrics()))
	var labels []string
	for _, u := range ts {
		labels = append(labels, u.label())
	}
	want := "directory; directory, Litestream; directory, encrypted; MinIO; MinIO, Litestream; MinIO, encrypted; directory, metrics served"
	if got := strings.Join(labels, "; "); got != want {
		t.Fatalf("targets %q; want %q", got, want)
	}
	if j := lsTwin(ts, ts[3]); j != 4 {
		t.Errorf("MinIO's Litestream twin at %d; want 4", j)
	}
	for _, i := range []int{1, 2, 6} {
		if j := lsTwin(ts, ts[i]); j != -1 {
			t.Errorf("%s has a Litestream twin at %d; only a plain walship target has one", ts[i].label(), j)
		}
	}
	if ts[0].slug() == ts[1].slug() {
		t.Error("walship and Litestream share their replicas")
	}
	if got := ts[4].lsYAML("k", true, "sync-interval: 1ms"); got != "url: s3://bench/k\n      endpoint: http://127.0.0.1:9001\n      region: us-east-1\n      force-path-style: true\n      sync-interval: 1ms" {
		t.Errorf("Litestream's MinIO replica block %q", got)
	}
	bin, args := ts[1].restoreArgs("/c.yml", "/db", "k", "/out", "quick")
	if bin != "/bin/litestream" || strings.Join(args, " ") != "restore -integrity-check quick -o /out -config /c.yml /db" {
		t.Errorf("Litestream restores with %s %q", bin, args)
	}
	bin, args = ts[2].restoreArgs("/c.yml", "/db", "k", "/out", "")
	if bin != b.walship || strings.Join(args, " ") != "restore -encryption-key-path /k/key -o /out "+ts[2].url("k", false) {
		t.Errorf("walship restores with %s %q", bin, args)
	}
	b.litestream = ""
	if n := len(b.withLitestreamTwins(b.targets())); n != 2 {
		t.Errorf("without Litestream, %d targets; want walship's 2", n)
	}
}

func TestLSSyncInterval(t *testing.T) {
	if got := lsSyncInterval("sync-interval: 0s"); got != "sync-interval: 1ms" {
		t.Errorf("Litestream's sync-interval for walship's 0 is %q; it refuses 0, so want its smallest", got)
	}
	if got := lsSyncInterval(""); got != "" {
		t.Errorf("default settings became %q", got)
	}
	if lsSettingNote("") != "" || !strings.Contains(lsSettingNote("sync-interval: 0s"), "1ms") {
		t.Error("the report does not say how Litestream's setting differs")
	}
}

// The LZ4 limit is only a decompression rate if its pages compress.
func TestBenchPagesCompress(t *testing.T) {
	var c lz4.Compressor
	dst := make([]byte, lz4.CompressBlockBound(4096))
	for i, p := range benchPages(4) {
		n, err := c.CompressBlock(p, dst)
		if err != nil || n == 0 || n > 3000 {
			t.Errorf("page %d compresses to %d bytes (%v); want about half of 4096", i, n, err)
		}
	}
}
