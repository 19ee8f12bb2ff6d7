package verify_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/verify"
)

// countingClient counts the requests made to a replica, and how many files
// are open at once.
type countingClient struct {
	storage.Client
	mu       sync.Mutex
	lists    map[int]int
	opens    map[string]int
	open     int // files open now
	maxOpen  int
	openErr  func(f string) error // fails the opening of a file
	readFail func(f string) bool  // makes reading a file fail after a few bytes
}

func newCounting(c storage.Client) *countingClient {
	return &countingClient{Client: c, lists: map[int]int{}, opens: map[string]int{}}
}

func (c *countingClient) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	c.mu.Lock()
	c.lists[level]++
	c.mu.Unlock()
	return c.Client.LTXFiles(ctx, level)
}

func (c *countingClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	name := storage.Describe(level, minTXID, maxTXID)
	if c.openErr != nil {
		if err := c.openErr(name); err != nil {
			return nil, err
		}
	}
	rc, err := c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opens[name]++
	c.open++
	c.maxOpen = max(c.maxOpen, c.open)
	var r io.Reader = rc
	if c.readFail != nil && c.readFail(name) {
		r = io.MultiReader(io.LimitReader(rc, 150), errReader{})
	}
	return &countedFile{Reader: r, Closer: rc, c: c}, nil
}

type countedFile struct {
	io.Reader
	io.Closer
	c *countingClient
}

func (f *countedFile) Close() error {
	f.c.mu.Lock()
	f.c.open--
	f.c.mu.Unlock()
	return f.Closer.Close()
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

// TestReadsEachFileOnce: verify lists each level once and reads each file
// once, whole, with no more files open at once than Parallelism.
func TestReadsEachFileOnce(t *testing.T) {
	s := newSource(t, "a")
	s.history()
	c := newCounting(s.replica)
	r, err := verify.Replica(context.Background(), c, verify.Options{Parallelism: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Whole() {
		t.Fatalf("problems:\n%s", dump(r))
	}
	for level := 0; level <= storage.MaxLevel; level++ {
		if c.lists[level] != 1 {
			t.Errorf("level %d listed %d times; want once", level, c.lists[level])
		}
		for _, f := range s.files(level) {
			if n := c.opens[storage.Describe(level, f.MinTXID, f.MaxTXID)]; n != 1 {
				t.Errorf("%s read %d times; want once", storage.Describe(level, f.MinTXID, f.MaxTXID), n)
			}
		}
	}
	if len(c.opens) != r.Files || r.Files < 15 {
		t.Errorf("%d files opened, %d reported", len(c.opens), r.Files)
	}
	if c.maxOpen > 2 || c.maxOpen < 1 {
		t.Errorf("%d files open at once; Parallelism is 2", c.maxOpen)
	}
}

// TestCouldNotCheck: a replica that cannot be listed or read is an error,
// not a problem of the replica; a file deleted since the listing (retention
// at work) is left out and said so.
func TestCouldNotCheck(t *testing.T) {
	s := newSource(t, "a")
	s.history()
	ctx := context.Background()

	down := newCounting(s.replica)
	down.Client = failingLister{s.replica}
	if r, err := verify.Replica(ctx, down, verify.Options{}); err == nil || r != nil || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("listing failed: report %v, error %v; want the error alone", r, err)
	}

	broken := newCounting(s.replica)
	broken.readFail = func(name string) bool { return strings.HasPrefix(name, "level 1 ") }
	if r, err := verify.Replica(ctx, broken, verify.Options{}); err == nil || r != nil || !strings.Contains(err.Error(), "connection reset by peer") || !strings.Contains(err.Error(), "level 1 file") {
		t.Errorf("a read failed: report %v, error %v; want the error, naming the file", r, err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := verify.Replica(cancelled, s.replica, verify.Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: error %v", err)
	}

	// Level-0 files 2-5, merged into level 1, vanish between the listing and
	// their reads.
	vanishing := newCounting(s.replica)
	vanishing.openErr = func(name string) error {
		for _, f := range []string{"2-0", "3-0", "4-0", "5-0"} {
			if strings.HasPrefix(name, "level 0 file 000000000000000"+f) {
				return storage.ErrNotFound
			}
		}
		return nil
	}
	r, err := verify.Replica(ctx, vanishing, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Whole() || r.Vanished != 4 || !strings.Contains(strings.Join(r.Notes, "\n"), "4 files were deleted while verify ran") {
		t.Errorf("vanished %d, notes %q:\n%s", r.Vanished, r.Notes, dump(r))
	}
}

type failingLister struct{ storage.Client }

func (f failingLister) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	if level == 2 {
		return nil, errors.New("replica s3://bucket/db: list level 2: access denied")
	}
	return f.Client.LTXFiles(ctx, level)
}
