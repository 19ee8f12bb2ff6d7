// Package azure is the replica backend for Azure Blob Storage.
package azure

import (
	"context"
	"errors"

	"github.com/walship/walship/storage"
)

// Client stores LTX files in Azure Blob Storage.
type Client struct{ storage.Client }

// Open returns a client for the destination of spec (abs://...).
func Open(ctx context.Context, spec storage.Spec) (*Client, error) {
	return nil, errors.New("abs replicas are not implemented yet")
}
