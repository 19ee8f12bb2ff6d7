package walship

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
)

type sqliteCode int

func (c sqliteCode) Error() string { return fmt.Sprintf("sqlite error %d", int(c)) }
func (c sqliteCode) Code() int     { return int(c) }

// TestTransient: what start-up retries and what it gives up on.
func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("stage a file: %w", syscall.ENOSPC), true},
		{fmt.Errorf("open: %w", syscall.EACCES), true},
		{fmt.Errorf("open the database: %w", sqliteCode(13)), true},       // SQLITE_FULL
		{fmt.Errorf("open the database: %w", sqliteCode(5|(3<<8))), true}, // SQLITE_BUSY_SNAPSHOT
		{fmt.Errorf("open the database: %w", sqliteCode(26)), false},      // SQLITE_NOTADB
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},       // a store not up yet
		{&net.DNSError{Err: "no such host", IsNotFound: true}, false},     // a misspelt host
		{fmt.Errorf("list: %w", x509.UnknownAuthorityError{}), false},     // a certificate that does not verify
		{errors.New("the file is not a SQLite database"), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
