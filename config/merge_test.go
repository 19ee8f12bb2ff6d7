package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Merge keys that merge mappings that merge mappings cost what the file
// holds: 64 databases each merging the one before twice would otherwise be
// 2^64 walks.
func TestNestedMerges(t *testing.T) {
	var b strings.Builder
	b.WriteString("dbs:\n  - &m0 {path: /a0.db, sync-interval: 1s}\n")
	for i := 1; i <= 64; i++ {
		fmt.Fprintf(&b, "  - &m%d {<<: [*m%d, *m%d], path: /a%d.db}\n", i, i-1, i-1, i)
	}
	cfg, err := Parse("nested.yml", []byte(b.String()), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.DBs) != 65 {
		t.Fatalf("got %d databases", len(cfg.DBs))
	}
	if d := cfg.DBs[64].SyncInterval; d == nil || *d != time.Second {
		t.Fatalf("the last database's sync-interval is %v; want 1s from the merges", d)
	}
}
