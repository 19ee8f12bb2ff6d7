package config

import (
	"fmt"
	"slices"
	"testing"

	"github.com/walship/walship/storage/backend"
)

// Every key a backend declares is a replica key of the config file: the
// parser reads the backends' declarations, not a list of its own.
func TestBackendKeysAccepted(t *testing.T) {
	keys := backend.Keys()
	for _, k := range []string{"region", "credentials-file", "sas-token", "host-key", "ca-file", "creds"} {
		if !slices.Contains(keys, k) {
			t.Fatalf("no backend declares %s: %v", k, keys)
		}
	}
	for _, k := range keys {
		cfg, err := Parse("test.yml", []byte(fmt.Sprintf("dbs:\n  - path: /a.db\n    replica:\n      url: s3://b/p\n      %s: x\n", k)), false)
		if err != nil {
			t.Errorf("key %s: %v", k, err)
			continue
		}
		if got := cfg.DBs[0].Replica.Extra[k]; got != "x" {
			t.Errorf("key %s: Extra holds %q", k, got)
		}
	}
}
