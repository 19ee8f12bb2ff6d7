package owner_test

import (
	"os"
	"path/filepath"

	"github.com/walship/walship/internal/owner"
)

func removeRecord(dir string) error { return os.Remove(filepath.Join(dir, owner.RecordName)) }
