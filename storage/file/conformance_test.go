package file_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
	"github.com/walship/walship/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Client { return file.New(t.TempDir()) })
}

// TestConformanceObjects: any file under the replica directory reads back
// through storage.Objects.
func TestConformanceObjects(t *testing.T) {
	storagetest.RunObjects(t, func(t *testing.T) (storage.Client, storagetest.Put) {
		c := file.New(t.TempDir())
		return c, func(name string, data []byte) error {
			p := filepath.Join(c.Dir(), filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			return os.WriteFile(p, data, 0o644)
		}
	})
}
