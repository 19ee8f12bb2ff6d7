package storage

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"

	"github.com/walship/walship/internal/bytesize"
)

// Spec is a replica destination as the operator wrote it: a URL, and the
// replica's other config keys. Each backend's Open reads what it needs from
// it.
type Spec struct {
	// URL is the destination, e.g. s3://bucket/path?region=eu-west-1. A
	// replica configured with type:, bucket: and path: keys instead of url:
	// arrives here as the equivalent URL.
	URL *url.URL

	// Keys are the replica's config keys as written ("region",
	// "force-path-style", "part-size", ...). Nil when there are none.
	Keys map[string]string

	// Transfers, when set, is the process-wide limit on concurrent transfers
	// and buffered bytes that the client must respect.
	Transfers *Transfers

	// Logger receives the client's own messages; nil means slog.Default().
	Logger *slog.Logger
}

// Option returns a setting: the config key when set, else the first URL query
// parameter of the given names that is set, else "".
func (s Spec) Option(key string, queryNames ...string) string {
	if v, ok := s.Keys[key]; ok && v != "" {
		return v
	}
	if s.URL != nil {
		q := s.URL.Query()
		for _, n := range queryNames {
			if v := q.Get(n); v != "" {
				return v
			}
		}
	}
	return ""
}

// BoolOption is Option parsed as a boolean; unset is def.
func (s Spec) BoolOption(def bool, key string, queryNames ...string) (bool, error) {
	v := s.Option(key, queryNames...)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(strings.ToLower(v))
	if err != nil {
		return false, fmt.Errorf("%s: %q is not true or false", key, v)
	}
	return b, nil
}

// SizeOption is Option parsed as a byte size ("5MB", "64MiB", "1048576",
// see package bytesize); unset is def.
func (s Spec) SizeOption(def int64, key string, queryNames ...string) (int64, error) {
	v := s.Option(key, queryNames...)
	if v == "" {
		return def, nil
	}
	n, err := bytesize.Parse(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return n, nil
}

// IntOption is Option parsed as a positive integer; unset is def.
func (s Spec) IntOption(def int, key string, queryNames ...string) (int, error) {
	v := s.Option(key, queryNames...)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive whole number", key, v)
	}
	return n, nil
}

// Log returns the logger to use.
func (s Spec) Log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}
