package storage

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// A Backend declares one kind of replica destination, once: the config
// parser takes its keys from here, the opener its schemes and Open, the
// command line its URL form, and the redaction of URLs in messages whether
// a URL's user name may be shown. Package storage/backend lists them all.
type Backend struct {
	// Schemes are the URL schemes it serves. The first is its type: the
	// value of a replica's type: key.
	Schemes []string
	// Form is the shape of its URLs, for messages ("s3://BUCKET/PATH").
	Form string
	// Keys are the replica config keys it reads, beyond url, path and
	// type.
	Keys []string
	// Ignored are Litestream's config keys for this kind of destination
	// that it accepts and does not act on, each with what it does instead:
	// the config file warns about them rather than refuse them.
	Ignored map[string]string
	// UserIsLogin says the user name of its URLs is a login name, which
	// messages may show (never the password); otherwise the URL's user
	// information is a credential (an S3 access key, a NATS token) and
	// none of it is shown.
	UserIsLogin bool
	// FromKeys returns the destination URL of a replica written with
	// type:, path: and keys (bucket:, host:, ...) instead of url:, and the
	// keys to open it with. Nil: the backend needs url:.
	FromKeys func(path string, keys map[string]string) (*url.URL, map[string]string, error)
	// Open returns a client for spec.
	Open func(ctx context.Context, spec Spec) (Client, error)
}

// Type returns the backend's type, its first scheme.
func (b Backend) Type() string { return b.Schemes[0] }

// OpenClient adapts a backend's Open, which returns its concrete client, to
// Backend.Open without turning a nil pointer into a non-nil interface.
func OpenClient[C Client](open func(context.Context, Spec) (C, error)) func(context.Context, Spec) (Client, error) {
	return func(ctx context.Context, spec Spec) (Client, error) {
		c, err := open(ctx, spec)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// WithKey returns keys with k set to v, allocating the map if needed.
func WithKey(keys map[string]string, k, v string) map[string]string {
	if keys == nil {
		keys = map[string]string{}
	}
	keys[k] = v
	return keys
}

// BucketURL is the FromKeys of backends whose destination is a bucket (S3,
// GCS, Azure's container): scheme://BUCKET/PATH from the bucket: key, with
// the account-name: key as the URL's user when accountUser is set.
func BucketURL(scheme string, accountUser bool) func(path string, keys map[string]string) (*url.URL, map[string]string, error) {
	return func(path string, keys map[string]string) (*url.URL, map[string]string, error) {
		bucket := keys["bucket"]
		if bucket == "" {
			return nil, nil, fmt.Errorf("%s replica has no bucket: add bucket: (or write url: %s://BUCKET/PATH)", scheme, scheme)
		}
		u := &url.URL{Scheme: scheme, Host: bucket, Path: "/" + strings.TrimPrefix(path, "/")}
		if accountUser && keys["account-name"] != "" {
			u.User = url.User(keys["account-name"])
		}
		return u, keys, nil
	}
}
