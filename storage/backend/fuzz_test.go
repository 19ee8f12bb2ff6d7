package backend

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParse: any replica URL or path is accepted as one of the backends or
// rejected, and neither the rejection nor the redacted URL shows a password
// the URL carried.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"s3://bucket/app?endpoint=http://127.0.0.1:9000&region=auto", "file:///backups/app", "backups/app",
		"sftp://backup:hunter2@host:22/db", "abs://acct@c/p?sig=abc&sv=2020", "nats://token@host:4222/b/p",
		"webdavs://u:pw@dav.example.com/x", "file://host/x", "ftp://h/x", "s3://%zz", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		redacted := Redact(s)
		u, b, err := Parse(s)
		var password string
		if pu, perr := url.Parse(strings.TrimSpace(s)); perr == nil && pu.User != nil {
			password, _ = pu.User.Password()
		}
		// A password that also stands elsewhere in the URL may show there.
		if len(password) >= 4 && strings.Count(s, password) == 1 {
			if strings.Contains(redacted, password) {
				t.Fatalf("Redact(%q) = %q shows the password", s, redacted)
			}
			if err != nil && strings.Contains(err.Error(), password) {
				t.Fatalf("the error for %q shows the password: %v", s, err)
			}
		}
		if err != nil {
			return
		}
		if known, ok := Lookup(u.Scheme); !ok || known.Type() != b.Type() {
			t.Fatalf("%q parsed to scheme %q of backend %s", s, u.Scheme, b.Type())
		}
	})
}
