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
