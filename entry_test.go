package walship

import (
	"context"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/walship/walship/config"
)

// A database registered at run time (Store.Entry) gets the config file's
// top-level settings exactly as the file's own databases do; one whose
// replica cannot be opened is refused naming where it came from.
func TestEntryLikeConfig(t *testing.T) {
	dir := t.TempDir()
	yml := `access-key-id: AKIA
secret-access-key: shh
snapshot:
  interval: 3h
  retention: 48h
levels:
  - interval: 30s
l0-retention: 2m
retention:
  enabled: false
max-local-bytes: 64MB
dbs:
  - path: ` + filepath.Join(dir, "a.db") + `
    replica:
      url: file://` + filepath.Join(dir, "ra") + `
`
	cfg, err := config.Parse("walship.yml", []byte(yml), false)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	store, err := FromConfig(ctx, cfg, "walship.yml", log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg, err := store.Entry(ctx, &config.DB{Path: filepath.Join(dir, "b.db"), Replica: &config.Replica{URL: "file://" + filepath.Join(dir, "rb")}})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.closeClients()
	got, want := reg.opts, store.DBs[0].opts
	got.MetaPath, want.MetaPath = "", "" // each database's own
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("registered database's options:\n%+v\nthe config's database's:\n%+v", got, want)
	}
	if len(reg.opts.Levels) != 1 || reg.opts.SnapshotInterval == 0 || !reg.opts.RetentionDisabled {
		t.Fatalf("the config's settings did not reach the registered database: %+v", reg.opts)
	}
	_, err = store.Entry(ctx, &config.DB{Path: filepath.Join(dir, "c.db"), Replica: &config.Replica{URL: "nosuch://x/y"}})
	if err == nil || !strings.HasPrefix(err.Error(), "walship.yml: database ") || strings.Contains(err.Error(), ":0:") {
		t.Fatalf("a bad replica: %v", err)
	}
}
