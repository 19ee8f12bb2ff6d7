package sftp

import (
	"errors"
	"net/url"
	"strings"

	"github.com/walship/walship/storage"
)

// Backend declares the SFTP backend: sftp://USER@HOST[:PORT]/PATH.
var Backend = storage.Backend{
	Schemes:     []string{Type},
	Form:        "sftp://USER@HOST/PATH",
	Keys:        []string{"host", "user", "password", "key-path", "host-key", "known-hosts", "concurrent-writes"},
	UserIsLogin: true,
	FromKeys: func(path string, keys map[string]string) (*url.URL, map[string]string, error) {
		host := keys["host"]
		if host == "" {
			return nil, nil, errors.New("sftp replica has no host: add host: (or write url: sftp://USER@HOST/PATH)")
		}
		// As in Litestream, a relative path is in the login directory.
		if !strings.HasPrefix(path, "/") {
			path = "/~/" + path
		}
		u := &url.URL{Scheme: Type, Host: host, Path: path}
		if keys["user"] != "" {
			u.User = url.User(keys["user"])
		}
		return u, keys, nil
	},
	Open: storage.OpenClient(Open),
}
