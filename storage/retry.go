package storage

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how often and how patiently a backend retries a request
// that failed for a reason that may pass: throttling, a 5xx answer, a reset
// connection, a timeout.
type RetryPolicy struct {
	Attempts int           // total tries, including the first
	Base     time.Duration // wait before the second try; doubles each time
	Max      time.Duration // longest single wait
}

// DefaultRetry is the policy of every backend that does not rely on its SDK's
// own retries. A replica's upload loop retries forever on top of this, so a
// bounded number here only decides how soon a failure is reported.
var DefaultRetry = RetryPolicy{Attempts: 6, Base: 100 * time.Millisecond, Max: 5 * time.Second}

// Retry calls fn until it succeeds, fails with an error that retryable
// rejects, the policy's attempts are spent, or ctx ends. Waits grow
// exponentially with full jitter, so many clients backing off at once do not
// retry in step. The error returned is fn's last.
func Retry(ctx context.Context, p RetryPolicy, retryable func(error) bool, fn func(ctx context.Context) error) error {
	attempts := max(p.Attempts, 1)
	wait := p.Base
	var err error
	for i := 0; i < attempts; i++ {
		if err = fn(ctx); err == nil {
			return nil
		}
		if ctx.Err() != nil || !retryable(err) || errors.Is(err, ErrNotFound) || i == attempts-1 {
			return err
		}
		d := time.Duration(rand.Int64N(int64(wait) + 1))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(wait*2, p.Max)
	}
	return err
}
