package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/superfly/ltx"
)

func TestLevelDirs(t *testing.T) {
	for _, tt := range []struct{ prefix, hex, ltx string }{
		{"", "0009/", "ltx/9/"},
		{"/", "0009/", "ltx/9/"},
		{"db", "db/0009/", "db/ltx/9/"},
		{"/a/b/", "a/b/0009/", "a/b/ltx/9/"},
	} {
		if got := HexLevelDir(tt.prefix, 9); got != tt.hex {
			t.Errorf("HexLevelDir(%q) = %q; want %q", tt.prefix, got, tt.hex)
		}
		if got := LTXLevelDir(tt.prefix, 9); got != tt.ltx {
			t.Errorf("LTXLevelDir(%q) = %q; want %q", tt.prefix, got, tt.ltx)
		}
	}
	if got := HexLevelDir("x", 10); got != "x/000a/" {
		t.Errorf("level 10 is %q; want lowercase hex", got)
	}
}

func TestParseFileName(t *testing.T) {
	if min, max, ok := ParseFileName("db/0000/0000000000000001-00000000000000ff.ltx"); !ok || min != 1 || max != 255 {
		t.Errorf("got %s-%s %v", min, max, ok)
	}
	for _, bad := range []string{"x.ltx", "0000000000000002-0000000000000001.ltx", "0000000000000000-0000000000000001.ltx", ".0000000000000001-0000000000000001.ltx.tmp"} {
		if _, _, ok := ParseFileName(bad); ok {
			t.Errorf("ParseFileName(%q) accepted", bad)
		}
	}
}

func TestTimestamp(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.FixedZone("x", 3600))
	s := FormatTimestamp(at)
	if s != "2026-03-04T04:06:07.891Z" {
		t.Fatalf("FormatTimestamp = %q", s)
	}
	got, err := ParseTimestamp(s)
	if err != nil || !got.Equal(at) || got.Location() != time.UTC {
		t.Fatalf("ParseTimestamp(%q) = %v, %v", s, got, err)
	}
	if _, err := ParseTimestamp("yesterday"); err == nil {
		t.Fatal("ParseTimestamp accepted garbage")
	}
}

func TestSpecOptions(t *testing.T) {
	u, _ := url.Parse("s3://b/p?forcePathStyle=true&partSize=6MB&n=3")
	s := Spec{URL: u, Keys: map[string]string{"force-path-style": "false", "region": "eu"}}
	if v := s.Option("region", "region"); v != "eu" {
		t.Errorf("key: %q", v)
	}
	if b, err := s.BoolOption(true, "force-path-style", "forcePathStyle"); err != nil || b {
		t.Errorf("the key must win over the query: %v %v", b, err)
	}
	if n, err := s.SizeOption(0, "part-size", "partSize"); err != nil || n != 6_000_000 {
		t.Errorf("size from the query: %d %v", n, err)
	}
	if n, err := s.IntOption(1, "concurrency", "n"); err != nil || n != 3 {
		t.Errorf("int: %d %v", n, err)
	}
	if n, err := s.IntOption(7, "absent"); err != nil || n != 7 {
		t.Errorf("default: %d %v", n, err)
	}
	bad := Spec{Keys: map[string]string{"skip-verify": "maybe", "part-size": "5 parsecs", "concurrency": "-1"}}
	if _, err := bad.BoolOption(false, "skip-verify"); err == nil {
		t.Error("bool accepted maybe")
	}
	if _, err := bad.SizeOption(0, "part-size"); err == nil {
		t.Error("size accepted parsecs")
	}
	if _, err := bad.IntOption(0, "concurrency"); err == nil {
		t.Error("int accepted -1")
	}
}

// Transfers holds every transfer beyond its limits until one ends, and a
// request larger than the whole budget still runs, alone.
func TestTransfers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		tr := NewTransfers(2, 100)
		r1, err := tr.Acquire(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan func(), 1)
		go func() {
			r, err := tr.Acquire(ctx, 60) // 120 bytes > 100: waits for r1
			if err != nil {
				t.Error(err)
			}
			got <- r
		}()
		synctest.Wait()
		select {
		case <-got:
			t.Fatal("a transfer beyond the byte budget started")
		default:
		}
		r1()
		r2 := <-got
		r2()

		big, err := tr.Acquire(ctx, 1<<30) // clamped to the budget
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := tr.Acquire(cctx, 1)
			done <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("a waiting Acquire returned %v when its context ended", err)
		}
		big()

		// Slots bound the count even for transfers that buffer nothing.
		a, _ := tr.Acquire(ctx, 0)
		b, _ := tr.Acquire(ctx, 0)
		third := make(chan struct{})
		go func() {
			r, _ := tr.Acquire(ctx, 0)
			r()
			close(third)
		}()
		synctest.Wait()
		select {
		case <-third:
			t.Fatal("a third transfer started with two slots")
		default:
		}
		a()
		<-third
		b()

		var none *Transfers
		r, err := none.Acquire(ctx, 1<<40)
		if err != nil {
			t.Fatal(err)
		}
		r()
	})
}

// Retry retries what may pass, with growing waits, and stops at once for
// what will not.
func TestRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		transient := errors.New("503")
		calls := 0
		start := time.Now()
		err := Retry(ctx, RetryPolicy{Attempts: 4, Base: time.Second, Max: 2 * time.Second}, func(error) bool { return true },
			func(context.Context) error {
				calls++
				if calls < 3 {
					return transient
				}
				return nil
			})
		if err != nil || calls != 3 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
		if waited := time.Since(start); waited > 3*time.Second {
			t.Fatalf("waited %s; at most 1s + 2s", waited)
		}

		calls = 0
		err = Retry(ctx, DefaultRetry, func(error) bool { return true }, func(context.Context) error {
			calls++
			return transient
		})
		if !errors.Is(err, transient) || calls != DefaultRetry.Attempts {
			t.Fatalf("err %v after %d calls; want the last error after %d", err, calls, DefaultRetry.Attempts)
		}

		calls = 0
		permanent := errors.New("403")
		err = Retry(ctx, DefaultRetry, func(err error) bool { return err != permanent }, func(context.Context) error {
			calls++
			return permanent
		})
		if err != permanent || calls != 1 {
			t.Fatalf("a permanent error was retried: %d calls", calls)
		}
		calls = 0
		err = Retry(ctx, DefaultRetry, func(error) bool { return true }, func(context.Context) error {
			calls++
			return ErrNotFound
		})
		if calls != 1 {
			t.Fatalf("not found was retried: %d calls", calls)
		}

		cctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
		defer cancel()
		calls = 0
		Retry(cctx, RetryPolicy{Attempts: 100, Base: 100 * time.Millisecond, Max: time.Second}, func(error) bool { return true },
			func(context.Context) error { calls++; return transient })
		if calls >= 100 || cctx.Err() == nil {
			t.Fatalf("Retry went on after its context ended (%d calls)", calls)
		}
	})
}

// DeleteEach checks every level before deleting anything, skips nil entries,
// keeps at most n deletions in flight and returns the first error.
func TestDeleteEach(t *testing.T) {
	ctx := context.Background()
	errorf := func(format string, args ...any) error { return fmt.Errorf("replica x: "+format, args...) }
	var calls atomic.Int64
	del := func(context.Context, *ltx.FileInfo) error { calls.Add(1); return nil }
	files := []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}, nil, {Level: 10, MinTXID: 2, MaxTXID: 2}}
	if err := DeleteEach(ctx, files, 2, errorf, del); err == nil || !strings.HasPrefix(err.Error(), "replica x: delete level 10") || calls.Load() != 0 {
		t.Fatalf("a bad level: %v after %d deletions", err, calls.Load())
	}
	var inFlight, most atomic.Int64
	boom := errors.New("boom")
	err := DeleteEach(ctx, []*ltx.FileInfo{{MinTXID: 1, MaxTXID: 1}, nil, {MinTXID: 2, MaxTXID: 2}, {MinTXID: 3, MaxTXID: 3}, {MinTXID: 4, MaxTXID: 4}}, 2, errorf,
		func(_ context.Context, f *ltx.FileInfo) error {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			calls.Add(1)
			if f.MinTXID == 3 {
				return boom
			}
			return nil
		})
	if !errors.Is(err, boom) || most.Load() > 2 {
		t.Fatalf("error %v, %d deletions at once with a limit of 2", err, most.Load())
	}
	if calls.Load() == 0 || calls.Load() > 4 {
		t.Fatalf("%d deletions for 4 files", calls.Load())
	}
}

// Delay grows from Base to Max, and HalfJitter keeps each wait in the upper
// half of its step.
func TestRetryDelay(t *testing.T) {
	for _, p := range []RetryPolicy{DefaultRetry, LoopRetry, {Base: time.Second}} {
		for n := range 80 {
			step := p.Base << min(n, 30)
			if p.Max > 0 {
				step = min(step, p.Max)
				if n > 30 {
					step = p.Max
				}
			}
			lo := time.Duration(0)
			if p.HalfJitter {
				lo = step / 2
			}
			for range 20 {
				if d := p.Delay(n); d < lo || d > step {
					t.Fatalf("%+v: Delay(%d) = %s, outside %s..%s", p, n, d, lo, step)
				}
			}
		}
	}
}
