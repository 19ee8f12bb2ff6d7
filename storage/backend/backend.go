// Package backend opens the replica client for a destination URL, whatever
// its backend: it is the one place that knows every backend package.
package backend

import (
	"context"
	"fmt"
	"slices"
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

// keys are the replica config keys each backend reads, beyond url, path and
// type.
var keys = map[string][]string{
	"file": nil,
	"s3": {"bucket", "access-key-id", "secret-access-key", "region", "endpoint", "force-path-style",
		"skip-verify", "part-size", "concurrency", "checksums", "sse-customer-key", "sse-kms-key-id"},
	"gs":     {"bucket", "endpoint", "credentials-file", "part-size", "skip-verify"},
	"abs":    {"bucket", "account-name", "account-key", "sas-token", "endpoint", "part-size", "concurrency", "skip-verify"},
	"sftp":   {"host", "user", "password", "key-path", "host-key", "known-hosts", "concurrent-writes"},
	"webdav": {"user", "username", "webdav-username", "password", "webdav-password", "skip-verify", "ca-file"},
	"nats": {"host", "bucket", "username", "user", "password", "token", "creds", "nkey", "jwt", "seed", "tls",
		"root-cas", "client-cert", "client-key", "max-reconnects", "reconnect-wait", "timeout"},
}

// UnusedKeys returns, sorted, the keys of a replica of the given scheme that
// its backend does not read, so the caller can warn that they have no effect.
func UnusedKeys(scheme string, replicaKeys map[string]string) []string {
	scheme = strings.ToLower(scheme)
	if scheme == "webdavs" {
		scheme = "webdav"
	}
	var unused []string
	for k := range replicaKeys {
		if !slices.Contains(keys[scheme], k) {
			unused = append(unused, k)
		}
	}
	slices.Sort(unused)
	return unused
}

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
