package walship_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
)

// TestReplicaClientLogsNames: what a replica's storage client logs names
// the database and the replica, as the engine's own lines do.
func TestReplicaClientLogsNames(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "walship.yml")
	db := filepath.Join(dir, "app.db")
	yml := "dbs:\n  - path: " + db + "\n    replicas:\n      - name: blob\n        url: abs://account@container/app\n        account-key: a2V5\n        endpoint: http://127.0.0.1:1\n"
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath, false)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := walship.FromConfig(context.Background(), cfg, cfgPath, log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatal("the Azure client logged nothing when opened (it logs a debug line)")
	}
	for _, l := range lines {
		if !strings.Contains(l, "db="+db) || !strings.Contains(l, "replica=blob") {
			t.Errorf("a line without the database's and the replica's names: %s", l)
		}
	}
}
