package storage

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how often and how patiently something that failed for a
// reason that may pass (throttling, a 5xx answer, a reset connection, a
// timeout, a destination that is away) is tried again.
type RetryPolicy struct {
	Attempts int           // total tries, including the first; Retry's only
	Base     time.Duration // wait before the second try; doubles each time
	Max      time.Duration // longest single wait
	// HalfJitter makes each wait at least half its step, for loops that
	// retry for ever and log each failure; otherwise a wait is anywhere
	// from zero to its step (full jitter), which spreads many clients
	// backing off at once the most.
	HalfJitter bool
}

// DefaultRetry is the policy of every backend that does not rely on its SDK's
// own retries. A replica's upload loop retries forever on top of this, so a
// bounded number here only decides how soon a failure is reported.
var DefaultRetry = RetryPolicy{Attempts: 6, Base: 100 * time.Millisecond, Max: 5 * time.Second}

// LoopRetry is the policy of the loops that retry until their context ends:
// a replica's uploads, the engine's syncs, reading a replica's position at
// start-up.
var LoopRetry = RetryPolicy{Base: 100 * time.Millisecond, Max: 30 * time.Second, HalfJitter: true}

// Delay returns the wait after failed try number n (0 after the first
// failure): a step exponential from Base, at most Max, with jitter, so that
// many clients backing off at once do not retry in step.
func (p RetryPolicy) Delay(n int) time.Duration {
	step := p.Max
	if p.Max <= 0 || p.Base < p.Max>>min(n, 62) {
		step = p.Base << min(n, 30)
	}
	if p.HalfJitter {
		return step/2 + time.Duration(rand.Int64N(int64(step/2)+1))
	}
	return time.Duration(rand.Int64N(int64(step) + 1))
}

// Retry calls fn until it succeeds, fails with an error that retryable
// rejects, the policy's attempts are spent, or ctx ends, waiting Delay
// between tries. The error returned is fn's last.
func Retry(ctx context.Context, p RetryPolicy, retryable func(error) bool, fn func(ctx context.Context) error) error {
	attempts := max(p.Attempts, 1)
	var err error
	for i := 0; i < attempts; i++ {
		if err = fn(ctx); err == nil {
			return nil
		}
		if ctx.Err() != nil || !retryable(err) || errors.Is(err, ErrNotFound) || i == attempts-1 {
			return err
		}
		t := time.NewTimer(p.Delay(i))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
	return err
}
