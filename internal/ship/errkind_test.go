package ship

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/walship/walship/internal/event"
	"github.com/walship/walship/internal/owner"
)

// Upload errors sort into event's few kinds, through any wrapping.
func TestErrKind(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errors.New("connection refused"))}
	for err, want := range map[error]string{
		fmt.Errorf("replica s3: %w", context.DeadlineExceeded): event.ErrTimeout,
		fmt.Errorf("replica s3: %w", os.ErrDeadlineExceeded):   event.ErrTimeout,
		fmt.Errorf("replica s3: put: %w", refused):             event.ErrNetwork,
		fmt.Errorf("replica s3: %w", owner.ErrNotOwner):        event.ErrStopped,
		fmt.Errorf("x: %w", errForeignHistory):                 event.ErrStopped,
		errors.New("503 SlowDown"):                             event.ErrOther,
	} {
		if got := errKind(err); got != want {
			t.Errorf("errKind(%v) = %s, want %s", err, got, want)
		}
	}
}
