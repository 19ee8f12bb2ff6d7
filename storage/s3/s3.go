// Package s3 is the replica backend for S3 and S3-compatible stores (MinIO, R2, B2, Tigris, Spaces, ...).
package s3

import (
	"context"
	"errors"

	"github.com/walship/walship/storage"
)

// Client stores LTX files in S3 and S3-compatible stores (MinIO, R2, B2, Tigris, Spaces, ...).
type Client struct{ storage.Client }

// Open returns a client for the destination of spec (s3://...).
func Open(ctx context.Context, spec storage.Spec) (*Client, error) {
	return nil, errors.New("s3 replicas are not implemented yet")
}
