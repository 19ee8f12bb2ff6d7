package config

import (
	"slices"
	"strings"
	"testing"
)

// TestPathInsideDirectoryWarned: a database listed with path: that a dir:
// entry also matches is that entry's, with one warning at its line; the
// directory skips it (walship.Dir), so one database has one writer.
func TestPathInsideDirectoryWarned(t *testing.T) {
	cfg, err := Parse("t.yml", []byte(`dbs:
  - dir: /var/lib/tenants
    pattern: "*.db"
    replica:
      url: file:///backups/tenants
  - path: /var/lib/tenants/special.db
    replica:
      url: file:///backups/special
  - path: /var/lib/other.db
    replica:
      url: file:///backups/other
`), false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := warned(cfg), []string{"6 dbs[1].path"}; !slices.Equal(got, want) {
		t.Fatalf("warnings %q, want %q", got, want)
	}
	if msg := cfg.Warnings[0].Msg; !strings.Contains(msg, "line 2") || !strings.Contains(msg, "skips it") {
		t.Fatalf("warning %q does not name the directory entry and what walship does", msg)
	}
	if db := cfg.Database("/var/lib/tenants/special.db"); db == nil || db.Replica.URL != "file:///backups/special" {
		t.Fatalf("the database listed with path: is found as %+v; want its own entry", db)
	}
}
