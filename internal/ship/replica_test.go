package ship

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// unreachable is a destination whose every listing fails, and says so.
type unreachable struct {
	storage.Client
	tries chan struct{}
}

func (u *unreachable) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	u.tries <- struct{}{}
	return nil, errors.New("connection refused")
}

// Issue 12: while a destination failed, every new file woke the replica
// into another attempt (a request per sync) while the log said
// retry_in=26s. New files must not cut the backoff short.
func TestBackoffIgnoresWakes(t *testing.T) {
	u := &unreachable{Client: file.New(filepath.Join(t.TempDir(), "r")), tries: make(chan struct{}, 100)}
	r := New("r", u, Source{}, nil)
	backoff := make(chan time.Time)
	waits := make(chan time.Duration, 10)
	r.after = func(d time.Duration) <-chan time.Time {
		waits <- d
		return backoff
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	<-u.tries
	<-waits // failed, and backing off
	for range 20 {
		r.Wake()
	}
	select {
	case <-u.tries:
		t.Fatal("a wake cut the backoff short: the destination was tried again before retry_in passed")
	case <-time.After(200 * time.Millisecond):
	}
	backoff <- time.Now()
	select {
	case <-u.tries:
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt after the backoff passed")
	}
}
