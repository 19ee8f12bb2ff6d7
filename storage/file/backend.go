package file

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/walship/walship/storage"
)

// Backend declares the directory backend: file:///PATH, a plain directory
// path, or a replica with path: alone (relative to the working directory).
var Backend = storage.Backend{
	Schemes: []string{Type},
	Form:    "file:///PATH",
	FromKeys: func(path string, keys map[string]string) (*url.URL, map[string]string, error) {
		if strings.TrimSpace(path) == "" {
			return nil, nil, errors.New("file replica has an empty path")
		}
		return &url.URL{Scheme: Type, Path: New(path).Dir()}, keys, nil
	},
	Open: func(_ context.Context, spec storage.Spec) (storage.Client, error) {
		u := spec.URL
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("file URLs hold a local path, not host %q: write file:///backups/app (three slashes)", u.Host)
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return nil, errors.New("file URLs need an absolute path, like file:///backups/app; or give a plain (relative) directory path")
		}
		return New(u.Path), nil
	},
}
