package webdav

import (
	"github.com/walship/walship/storage"
)

// Backend declares the WebDAV backend: webdavs://HOST/PATH, or webdav:// for
// plain http. A replica needs url:.
var Backend = storage.Backend{
	Schemes:     []string{Type, Type + "s"},
	Form:        "webdavs://HOST/PATH",
	Keys:        []string{"user", "username", "webdav-username", "password", "webdav-password", "skip-verify", "ca-file"},
	UserIsLogin: true,
	Open:        storage.OpenClient(Open),
}
