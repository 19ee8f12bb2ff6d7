package main

import (
	"strings"
	"testing"
)

const sampleSmaps = `00400000-02a00000 r-xp 00000000 fd:00 123 /usr/bin/walship
Size:              38912 kB
Rss:               30000 kB
Pss:               30000 kB
203de1000000-203de5800000 rw-p 00000000 00:00 0 
Size:              73728 kB
Rss:               40000 kB
7f0000000000-7f0000008000 rw-s 00000000 fd:00 456 /data/db0001.db-shm
Size:                 32 kB
Rss:                  32 kB
7f0000010000-7f0000018000 rw-s 00000000 fd:00 457 /data/db0002.db-shm
Rss:                  32 kB
2b86cc800000-2b86ce000000 rw-p 00000000 00:00 0 
Rss:                1000 kB
7f0000100000-7f0000200000 rw-p 00000000 00:00 0 
Rss:                1000 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0 
Rss:                4000 kB
7f0001000000-7f0001100000 r--p 00000000 fd:00 789 /usr/lib/locale/C.utf8/LC_CTYPE
Rss:                 100 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Rss:                  12 kB
`

func TestParseSmaps(t *testing.T) {
	p, err := parseSmaps(strings.NewReader(sampleSmaps), "/usr/bin/walship")
	if err != nil {
		t.Fatal(err)
	}
	want := rssParts{exe: 30000 << 10, shm: 64 << 10, files: 100 << 10, goHeap: 41000 << 10, outside: 5012 << 10}
	if p != want {
		t.Fatalf("parts %+v; want %+v", p, want)
	}
}
