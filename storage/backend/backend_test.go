package backend

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenURL(t *testing.T) {
	wd, _ := os.Getwd()
	for in, want := range map[string]string{
		"file:///backups/app":          "file:///backups/app",
		"file://localhost/backups/app": "file:///backups/app",
		"/backups/app/":                "file:///backups/app",
		"rel/dir":                      "file://" + filepath.Join(wd, "rel/dir"),
	} {
		c, err := NewOpener(nil).OpenURL(context.Background(), in, nil)
		if err != nil || c.String() != want {
			t.Errorf("OpenURL(%q) = %v, %v; want %s", in, c, err, want)
		}
	}
	for _, in := range []string{"", "file://host/x", "file:rel", "ftp://h/x"} {
		if _, err := NewOpener(nil).OpenURL(context.Background(), in, nil); err == nil {
			t.Errorf("OpenURL(%q) accepted", in)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"s3://bucket/app?endpoint=http://x":           "s3://bucket/app?endpoint=http%3A%2F%2Fx",
		"sftp://backup:hunter2@host:22/db":            "sftp://backup:REDACTED@host:22/db",
		"sftp://backup@host/db":                       "sftp://backup@host/db",
		"nats://s3cr3ttoken@host:4222/b":              "nats://REDACTED@host:4222/b",
		"abs://acct@c/p?sig=abc&sv=2020":              "abs://acct@c/p?sig=REDACTED&sv=2020",
		"webdavs://u:pw@dav.example.com/x":            "webdavs://u:REDACTED@dav.example.com/x",
		"s3://b/p?secretAccessKey=k&accessKeyId=AKIA": "s3://b/p?accessKeyId=REDACTED&secretAccessKey=REDACTED",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q; want %q", in, got, want)
		}
	}
}
