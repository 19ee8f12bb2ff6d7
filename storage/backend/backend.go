// Package backend lists every replica backend, and opens the client of a
// destination whatever its backend: it is the one place that knows them
// all. Each backend declares itself once (its storage.Backend value: URL
// schemes, config keys, how its URLs are redacted, how it opens); the config
// parser, the opener, the command line and the redaction of URLs in
// messages all read these declarations.
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
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

// all are the backends, in the order the README lists them.
var all = []storage.Backend{file.Backend, s3.Backend, gcs.Backend, azure.Backend, sftp.Backend, webdav.Backend, nats.Backend, s3.OSSBackend}

// Lookup returns the backend that serves a URL scheme (or replica type), in
// any letter case.
func Lookup(scheme string) (storage.Backend, bool) {
	scheme = strings.ToLower(scheme)
	for _, b := range all {
		if slices.Contains(b.Schemes, scheme) {
			return b, true
		}
	}
	return storage.Backend{}, false
}

// Schemes returns every URL scheme a replica may use.
func Schemes() []string {
	var s []string
	for _, b := range all {
		s = append(s, b.Schemes...)
	}
	return s
}

// Forms returns the URL form of every backend, for usage messages.
func Forms() []string {
	var forms []string
	for _, b := range all {
		forms = append(forms, b.Form)
	}
	return forms
}

// Keys returns, sorted, every config key some backend reads.
func Keys() []string {
	var keys []string
	for _, b := range all {
		for _, k := range b.Keys {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// IgnoredKeys returns, sorted, every config key of Litestream's that some
// backend accepts and does not act on.
func IgnoredKeys() []string {
	var keys []string
	for _, b := range all {
		for k := range b.Ignored {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// IgnoredReason returns what walship does instead of the config key, when
// some backend ignores it; else "".
func IgnoredReason(key string) string {
	for _, b := range all {
		if r := b.Ignored[key]; r != "" {
			return r
		}
	}
	return ""
}

// TypesReading returns the types of the backends that read the config key,
// in the order the README lists them.
func TypesReading(key string) []string {
	var types []string
	for _, b := range all {
		if slices.Contains(b.Keys, key) {
			types = append(types, b.Type())
		}
	}
	return types
}

// IsURL reports whether s looks like a URL ("scheme://...") rather than a
// path.
func IsURL(s string) bool {
	i := strings.Index(s, "://")
	if i <= 0 {
		return false
	}
	for _, c := range s[:i] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Scheme returns the scheme of a URL, lower-cased, or "" for a path.
func Scheme(s string) string {
	if !IsURL(s) {
		return ""
	}
	return strings.ToLower(s[:strings.Index(s, "://")])
}

// secretParams are words that mark a URL query parameter as a secret.
var secretParams = []string{"secret", "password", "key", "token", "sig", "credential"}

// Redact returns the URL s fit for messages and listings: no password; no
// user information at all where the backend's is a credential (an S3
// access key, a NATS token) rather than a login name; and the values of
// secret-looking query parameters replaced.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// Drop anything that could be user information.
		if i := strings.Index(s, "://"); i >= 0 {
			rest := s[i+3:]
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				return s[:i+3] + "REDACTED@" + rest[at+1:]
			}
		}
		return s
	}
	if u.User != nil {
		_, hasPassword := u.User.Password()
		switch b, _ := Lookup(u.Scheme); {
		case !b.UserIsLogin:
			u.User = url.User("REDACTED")
		case hasPassword:
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			lk := strings.ToLower(k)
			for _, w := range secretParams {
				if strings.Contains(lk, w) {
					q.Set(k, "REDACTED")
					break
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Parse returns the destination a replica URL or a directory path names:
// the parsed URL, with its scheme lower-cased, and its backend. A path is a
// file URL of its absolute form.
func Parse(urlOrPath string) (*url.URL, storage.Backend, error) {
	s := strings.TrimSpace(urlOrPath)
	if s == "" {
		return nil, storage.Backend{}, errors.New("empty replica URL: use a URL like s3://bucket/path or file:///path/to/replica, or a directory path")
	}
	if !IsURL(s) {
		if strings.HasPrefix(s, "file:") {
			return nil, storage.Backend{}, fmt.Errorf("replica URL %q: write file URLs with three slashes and an absolute path, like file:///backups/app", s)
		}
		return &url.URL{Scheme: file.Type, Path: file.New(s).Dir()}, file.Backend, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, storage.Backend{}, fmt.Errorf("invalid replica URL %s: %v", Redact(s), stripURL(err))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	b, ok := Lookup(u.Scheme)
	if !ok {
		return nil, storage.Backend{}, fmt.Errorf("unknown replica URL scheme %q in %s: use one of %s, or a directory path", u.Scheme, Redact(s), strings.Join(Schemes(), "://, ")+"://")
	}
	return u, b, nil
}

// stripURL returns the reason of a *url.Error without the URL, which may
// hold credentials.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Opener opens replica clients. One serves a whole process, so that every
// client shares its transfer limits.
type Opener struct {
	transfers *storage.Transfers
	log       *slog.Logger
}

// NewOpener returns an Opener whose clients share the default transfer
// limits and log to log (nil: slog.Default()).
func NewOpener(log *slog.Logger) *Opener {
	return &Opener{transfers: storage.NewTransfers(0, 0), log: log}
}

// With returns an Opener that shares o's transfer limits and whose clients
// log to log: the logger of one database's replica, so that every line its
// client logs names the database and the replica.
func (o *Opener) With(log *slog.Logger) *Opener {
	return &Opener{transfers: o.transfers, log: log}
}

// OpenURL returns the client of a replica URL (s3://bucket/path,
// file:///abs/path, ...) or directory path. keys are the replica's config
// keys, if any.
func (o *Opener) OpenURL(ctx context.Context, urlOrPath string, keys map[string]string) (storage.Client, error) {
	u, b, err := Parse(urlOrPath)
	if err != nil {
		return nil, err
	}
	return o.open(ctx, b, u, keys)
}

// OpenKeys returns the client of a replica given by its type, path and keys
// (bucket:, host:, ...), as Litestream's config allows, rather than by URL.
func (o *Opener) OpenKeys(ctx context.Context, typ, path string, keys map[string]string) (storage.Client, error) {
	b, ok := Lookup(typ)
	if !ok {
		return nil, fmt.Errorf("unknown replica type %q: use one of %s", typ, strings.Join(Schemes(), ", "))
	}
	if b.FromKeys == nil {
		return nil, fmt.Errorf("%s replica needs url: (e.g. url: %s)", typ, b.Form)
	}
	u, keys, err := b.FromKeys(path, keys)
	if err != nil {
		return nil, err
	}
	return o.open(ctx, b, u, keys)
}

func (o *Opener) open(ctx context.Context, b storage.Backend, u *url.URL, keys map[string]string) (storage.Client, error) {
	c, err := b.Open(ctx, storage.Spec{URL: u, Keys: keys, Transfers: o.transfers, Logger: o.log})
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", Redact(u.String()), err)
	}
	return c, nil
}
