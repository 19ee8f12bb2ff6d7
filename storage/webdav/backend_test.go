package webdav

import (
	"strings"
	"testing"

	"github.com/walship/walship/storage"
)

// Litestream's webdav-url and path name the same destination as url:.
func TestFromKeys(t *testing.T) {
	for _, tt := range []struct {
		webdavURL, path, want string
	}{
		{"https://dav.example.com", "/backups/db", "webdavs://dav.example.com/backups/db"},
		{"http://127.0.0.1:8080/", "db", "webdav://127.0.0.1:8080/db"},
		{"https://cloud.example.com/remote.php/dav/files/u", "backups/db", "webdavs://cloud.example.com/remote.php/dav/files/u/backups/db"},
	} {
		u, keys, err := fromKeys(tt.path, map[string]string{"webdav-url": tt.webdavURL, "webdav-username": "u"})
		if err != nil {
			t.Fatal(err)
		}
		if u.String() != tt.want || keys["webdav-url"] != "" || keys["path"] != "" || keys["webdav-username"] != "u" {
			t.Errorf("%s + %s: %s, keys %v; want %s", tt.webdavURL, tt.path, u, keys, tt.want)
		}
		cfg, err := parseConfig(storage.Spec{URL: u, Keys: keys}, nil)
		if err != nil || cfg.display() != tt.want {
			t.Errorf("%s: opens %v, %v", tt.want, cfg, err)
		}
	}
	for _, tt := range []struct{ webdavURL, want string }{
		{"", "webdav replica needs url: (e.g. url: webdavs://HOST/PATH), or webdav-url:"},
		{"ftp://host", "webdav-url is not a URL like https://HOST"},
		{"https://u:hunter2@dav.example.com/x?token=abc", "a query or fragment is not read"},
	} {
		_, _, err := fromKeys("db", map[string]string{"webdav-url": tt.webdavURL})
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: %v; want %q", tt.webdavURL, err, tt.want)
		}
	}
	if _, err := parseConfig(spec(t, "webdavs://dav.example.com/db", map[string]string{"webdav-url": "https://other"}), nil); err == nil || !strings.Contains(err.Error(), "both url and webdav-url") {
		t.Errorf("url and webdav-url: %v", err)
	}
}
