// Package nats is the replica backend for a NATS JetStream object store.
package nats

import (
	"context"
	"errors"

	"github.com/walship/walship/storage"
)

// Client stores LTX files in a NATS JetStream object store.
type Client struct{ storage.Client }

// Open returns a client for the destination of spec (nats://...).
func Open(ctx context.Context, spec storage.Spec) (*Client, error) {
	return nil, errors.New("nats replicas are not implemented yet")
}
