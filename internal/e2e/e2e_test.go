package e2e

import (
	"path/filepath"
	"testing"

	"github.com/walship/walship/storage/file"
)

// The directory backend runs the same end-to-end test as the remote ones.
func TestFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	Run(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)})
}

func TestFileOwnership(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunOwnership(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)})
}

func TestFileHeal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunHeal(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)})
}

// TestFileLitestreamTakeover: walship takes over a directory replica
// Litestream 0.5 wrote, with Litestream's staging directory left beside
// the database.
func TestFileLitestreamTakeover(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunLitestreamTakeover(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)}, false)
}

// TestFileLitestreamTakeoverWithoutStaging: the same after Litestream's
// staging directory was deleted.
func TestFileLitestreamTakeoverWithoutStaging(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunLitestreamTakeover(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)}, true)
}

// TestFileLitestreamRestore: Litestream 0.5 restores a directory replica
// walship writes with litestream-compatible.
func TestFileLitestreamRestore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunLitestreamRestore(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)})
}
