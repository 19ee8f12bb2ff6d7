// Package gcs is the replica backend for Google Cloud Storage.
package gcs

import (
	"context"
	"errors"

	"github.com/walship/walship/storage"
)

// Client stores LTX files in Google Cloud Storage.
type Client struct{ storage.Client }

// Open returns a client for the destination of spec (gs://...).
func Open(ctx context.Context, spec storage.Spec) (*Client, error) {
	return nil, errors.New("gs replicas are not implemented yet")
}
