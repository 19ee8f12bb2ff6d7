// Package webdav is the replica backend for a WebDAV server.
package webdav

import (
	"context"
	"errors"

	"github.com/walship/walship/storage"
)

// Client stores LTX files in a WebDAV server.
type Client struct{ storage.Client }

// Open returns a client for the destination of spec (webdav://...).
func Open(ctx context.Context, spec storage.Spec) (*Client, error) {
	return nil, errors.New("webdav replicas are not implemented yet")
}
