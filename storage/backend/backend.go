// Package backend opens the replica client for a destination URL, whatever
// its backend: it is the one place that knows every backend package.
package backend

import (
	"context"
	"fmt"
	"strings"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/azure"
	"github.com/walship/walship/storage/file"
	"github.com/walship/walship/storage/gcs"
	"github.com/walship/walship/storage/nats"
	"github.com/walship/walship/storage/s3"
	"github.com/walship/walship/storage/sftp"
	"github.com/walship/walship/storage/webdav"
)

// Schemes are the URL schemes Open accepts, in the order the README lists
// them.
var Schemes = []string{"file", "s3", "gs", "abs", "sftp", "webdav", "webdavs", "nats"}

// Open returns the client for spec, chosen by the scheme of spec.URL.
func Open(ctx context.Context, spec storage.Spec) (storage.Client, error) {
	if spec.URL == nil {
		return nil, fmt.Errorf("replica has no URL")
	}
	switch scheme := strings.ToLower(spec.URL.Scheme); scheme {
	case "file":
		return file.New(spec.URL.Path), nil
	case "s3":
		return client(s3.Open(ctx, spec))
	case "gs":
		return client(gcs.Open(ctx, spec))
	case "abs":
		return client(azure.Open(ctx, spec))
	case "sftp":
		return client(sftp.Open(ctx, spec))
	case "webdav", "webdavs":
		return client(webdav.Open(ctx, spec))
	case "nats":
		return client(nats.Open(ctx, spec))
	default:
		return nil, fmt.Errorf("unknown replica URL scheme %q: use one of %s", spec.URL.Scheme, strings.Join(Schemes, ", "))
	}
}

// client converts a backend's concrete client to the interface without
// turning a nil pointer into a non-nil interface.
func client[C storage.Client](c C, err error) (storage.Client, error) {
	if err != nil {
		return nil, err
	}
	return c, nil
}
