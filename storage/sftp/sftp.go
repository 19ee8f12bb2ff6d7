// Package sftp is the replica backend for an SFTP host.
package sftp

import (
	"context"
	"errors"

	"github.com/walship/walship/storage"
)

// Client stores LTX files in an SFTP host.
type Client struct{ storage.Client }

// Open returns a client for the destination of spec (sftp://...).
func Open(ctx context.Context, spec storage.Spec) (*Client, error) {
	return nil, errors.New("sftp replicas are not implemented yet")
}
