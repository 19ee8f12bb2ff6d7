package e2e

import (
	"path/filepath"
	"testing"

	"github.com/walship/walship/storage/file"
)

// TestLitestream03File: Litestream v0.3 writes to a directory, walship
// restores it and replicates beside it.
func TestLitestream03File(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunLitestream03(t, Litestream03{
		V03YAML: "url: file://" + dir,
		Replica: Replica{YAML: "url: file://" + dir, Client: file.New(dir)},
	})
}
