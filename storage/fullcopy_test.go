package storage_test

import (
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// TestFullCopy: a file is a full copy when it holds every page up to the
// database's size, the lock page aside (which no file holds).
func TestFullCopy(t *testing.T) {
	lock := ltx.LockPgno(512) // the page at 1 GiB
	pages := func(from, to uint32, skip ...uint32) []uint32 {
		var out []uint32
		for p := from; p <= to; p++ {
			if p != lock && !(len(skip) > 0 && p == skip[0]) {
				out = append(out, p)
			}
		}
		return out
	}
	tests := []struct {
		name    string
		commit  uint32
		pgnos   []uint32
		full    bool
		missing uint32
	}{
		{"every page", 4, pages(1, 4), true, 0},
		{"across the lock page", lock + 2, pages(1, lock+2), true, 0},
		{"one page missing", 4, pages(1, 4, 3), false, 3},
		{"the last page missing", 4, pages(1, 3), false, 4},
		{"a page past the size", 3, pages(1, 4), false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := storage.NewFullCopy(ltx.Header{PageSize: 512, Commit: tt.commit})
			for _, p := range tt.pgnos {
				fc.See(p)
			}
			if fc.Full() != tt.full {
				t.Fatalf("Full() = %v; want %v", fc.Full(), tt.full)
			}
			if !tt.full && fc.Missing() != tt.missing {
				t.Errorf("Missing() = %d; want %d", fc.Missing(), tt.missing)
			}
		})
	}
}
