package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"time"

	"github.com/pierrec/lz4/v4"
)

// WriteV03Object stores data LZ4-compressed, as Litestream v0.3 stores its
// snapshots and WAL segments, as the object name (slash-separated, as
// litestream03.SnapshotName returns it) of the directory replica dir,
// with the modification time at, which is the object's time.
func WriteV03Object(dir, name string, data []byte, at time.Time) error {
	var b bytes.Buffer
	zw := lz4.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Chtimes(p, at, at)
}
