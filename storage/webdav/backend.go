package webdav

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path"
	"strings"

	"github.com/walship/walship/storage"
)

// Backend declares the WebDAV backend: webdavs://HOST/PATH, or webdav:// for
// plain http. A replica gives url:, or, as Litestream's config does,
// webdav-url: (the server, http:// or https://) with path:.
var Backend = storage.Backend{
	Schemes:     []string{Type, Type + "s"},
	Form:        "webdavs://HOST/PATH",
	Keys:        []string{"webdav-url", "user", "username", "webdav-username", "password", "webdav-password", "skip-verify", "ca-file"},
	UserIsLogin: true,
	FromKeys:    fromKeys,
	Open:        storage.OpenClient(Open),
}

// fromKeys turns Litestream's webdav-url (http[s]://HOST[:PORT][/ROOT])
// and path into the replica's URL, webdav[s]://HOST[:PORT]/ROOT/PATH.
func fromKeys(p string, keys map[string]string) (*url.URL, map[string]string, error) {
	raw := strings.TrimSpace(keys["webdav-url"])
	if raw == "" {
		return nil, nil, errors.New("webdav replica needs url: (e.g. url: webdavs://HOST/PATH), or webdav-url: (e.g. webdav-url: https://HOST) with path:")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		// Never echoed: it may hold a password.
		return nil, nil, errors.New("webdav-url is not a URL like https://HOST[:PORT][/ROOT]: check it, or write url: webdavs://HOST/PATH")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, nil, fmt.Errorf("webdav-url https://%s%s: a query or fragment is not read; give only the server and its root", u.Host, u.Path)
	}
	scheme := Type
	if u.Scheme == "https" {
		scheme += "s"
	}
	out := &url.URL{Scheme: scheme, Host: u.Host, User: u.User, Path: path.Join("/", u.Path, p)}
	keys = maps.Clone(keys)
	delete(keys, "webdav-url")
	delete(keys, "path")
	return out, keys, nil
}
