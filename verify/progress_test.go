package verify_test

import (
	"context"
	"sync"
	"testing"

	"github.com/walship/walship/verify"
)

// TestVerifyProgress: a verify tells how much of the replica it has read,
// up to the size of every file.
func TestVerifyProgress(t *testing.T) {
	s := newSource(t, "progress")
	s.commit(50)
	s.stage()
	s.upload()
	files, err := s.replica.LTXFiles(context.Background(), 0)
	if err != nil || len(files) == 0 {
		t.Fatalf("no files (%v)", err)
	}
	var mu sync.Mutex
	var most, total int64
	r, err := verify.Replica(context.Background(), s.replica, verify.Options{Progress: func(done, all int64) {
		mu.Lock()
		defer mu.Unlock()
		most, total = max(most, done), all
	}})
	if err != nil || !r.Whole() {
		t.Fatalf("verify: %v %+v", err, r)
	}
	if total == 0 || most != total {
		t.Fatalf("progress reached %d of %d bytes", most, total)
	}
}
