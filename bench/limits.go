package main

import (
	"fmt"
	"hash/crc64"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/pierrec/lz4/v4"
)

// limits are what this machine can do at most, measured in the same run as
// the figures they bound (issue 17), all in MB/s.
type limits struct {
	diskWrite float64 // sequential, 8 MiB writes, fsync at the end
	diskRead  float64 // sequential, 8 MiB reads, page cache emptied first
	readCold  bool    // whether the page cache could be emptied (root)
	crc64     float64 // one core, CRC64-ISO as the ltx library computes it
	lz4Comp   float64 // one core, LZ4 block compression of 4 KiB pages, as ltx does
	lz4Decomp float64 // one core, LZ4 block decompression of those pages
}

// disk is the limit of a first snapshot or a restore on one disk: each
// reads every byte and writes it again, so the slower of the two bounds it.
func (l limits) disk() float64 { return min(l.diskWrite, l.diskRead) }

func (l limits) String() string {
	warm := ""
	if !l.readCold {
		warm = " (page cache warm: emptying it needs root)"
	}
	return fmt.Sprintf("disk: write %.0f MB/s with fsync, cold read %.0f MB/s%s; one core: CRC64 %.0f MB/s, LZ4 compress %.0f MB/s, decompress %.0f MB/s",
		l.diskWrite, l.diskRead, warm, l.crc64, l.lz4Comp, l.lz4Decomp)
}

// measureLimits measures the disk under dir and one core's checksum and
// compression rates. A figure it cannot take is 0, which the report shows
// as unknown.
func measureLimits(dir string) limits {
	var l limits
	path := filepath.Join(dir, "dd")
	defer os.Remove(path)
	l.diskWrite = diskWriteSpeed(path)
	l.diskRead, l.readCold = diskReadSpeed(path)
	l.crc64 = crc64Rate()
	l.lz4Comp, l.lz4Decomp = lz4Rates()
	return l
}

// diskWriteSpeed is what dd if=/dev/zero bs=8M count=128 conv=fsync measures:
// the disk's own sequential write rate with an fsync at the end, the ceiling
// of a restore. It leaves the file at path for diskReadSpeed.
func diskWriteSpeed(path string) float64 {
	f, err := os.Create(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	buf := make([]byte, 8<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	start := time.Now()
	for range 128 {
		if _, err := f.Write(buf); err != nil {
			return 0
		}
	}
	if err := f.Sync(); err != nil {
		return 0
	}
	return float64(128*len(buf)) / 1e6 / time.Since(start).Seconds()
}

// diskReadSpeed reads the file at path with 8 MiB reads after emptying the
// page cache, as dd if=FILE bs=8M after drop_caches does: the ceiling of
// reading a database or a replica cold. It also says whether the cache
// could be emptied.
func diskReadSpeed(path string) (float64, bool) {
	cold := dropCaches()
	f, err := os.Open(path)
	if err != nil {
		return 0, cold
	}
	defer f.Close()
	buf := make([]byte, 8<<20)
	start := time.Now()
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, cold
		}
	}
	return float64(n) / 1e6 / time.Since(start).Seconds(), cold
}

// rateFor runs op over bytes bytes repeatedly for about a second and
// returns the best of three rates, in MB/s: the best, because on a shared
// machine a slower run measures the neighbours, not the core.
func rateFor(bytes int, op func()) float64 {
	best := 0.0
	for range 3 {
		start := time.Now()
		n := 0
		for time.Since(start) < 300*time.Millisecond {
			op()
			n += bytes
		}
		best = max(best, float64(n)/1e6/time.Since(start).Seconds())
	}
	return best
}

// crc64Rate is one core's CRC64-ISO rate over 4 MiB buffers, through
// hash/crc64 with the table the ltx library makes.
func crc64Rate() float64 {
	buf := randomBytes(4 << 20)
	h := crc64.New(crc64.MakeTable(crc64.ISO))
	return rateFor(len(buf), func() { h.Write(buf) })
}

// benchPages are the pages the LZ4 rates are taken on: 4 KiB, each half
// random bytes and half zeros, so that LZ4 neither gives up at once (as on
// the benchmark's incompressible rows) nor meets only zeros.
func benchPages(n int) [][]byte {
	pages := make([][]byte, n)
	for i := range pages {
		p := make([]byte, 4096)
		copy(p, randomBytes(2048))
		pages[i] = p
	}
	return pages
}

// lz4Rates are one core's LZ4 block compression and decompression rates
// of 4 KiB pages, through pierrec/lz4 as the ltx library calls it
// (Compressor.CompressBlock and UncompressBlock, one page a block).
func lz4Rates() (float64, float64) {
	pages := benchPages(256)
	var c lz4.Compressor
	dst := make([]byte, lz4.CompressBlockBound(4096))
	comp := rateFor(len(pages)*4096, func() {
		for _, p := range pages {
			c.CompressBlock(p, dst)
		}
	})
	blocks := make([][]byte, len(pages))
	for i, p := range pages {
		n, err := c.CompressBlock(p, dst)
		if err != nil || n == 0 {
			return comp, 0
		}
		blocks[i] = append([]byte(nil), dst[:n]...)
	}
	out := make([]byte, 4096)
	decomp := rateFor(len(pages)*4096, func() {
		for _, b := range blocks {
			lz4.UncompressBlock(b, out)
		}
	})
	return comp, decomp
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{17})
	r.Read(b)
	return b
}

// report is the report's lines on the machine's limits.
func (l limits) report() string {
	read := fmt.Sprintf("%.0f MB/s cold sequential read (the same file read back with 8 MiB reads after emptying the page cache)", l.diskRead)
	if !l.readCold {
		read = fmt.Sprintf("%.0f MB/s sequential read **with the page cache warm** (emptying it needs root)", l.diskRead)
	}
	return fmt.Sprintf("- Disk: %.0f MB/s sequential write with fsync (8 MiB writes, 1 GiB, then fsync: what `dd bs=8M count=128 conv=fsync` measures), %s; "+
		"a first snapshot or a restore reads every byte and writes it again, so its limit is the slower of the two, %.0f MB/s: the \"of the machine's limit\" column divides by it\n"+
		"- One core: CRC64-ISO %.0f MB/s (`hash/crc64` with `crc64.ISO`, the ltx library's checksum), LZ4 %.0f MB/s compressing and %.0f MB/s decompressing 4 KiB pages, half random and half zeros (`pierrec/lz4` block calls, as the ltx library makes them); best of three runs of 0.3 s each\n",
		l.diskWrite, read, l.disk(), l.crc64, l.lz4Comp, l.lz4Decomp)
}
