package verify_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/crypt"
	"github.com/walship/walship/storage/file"
	"github.com/walship/walship/verify"
)

// TestEncryptedDamage: an encrypted file that does not authenticate, or is
// cut short inside its header, is a damaged file of the report, as a plain
// file that fails its checksum is, not an error that stops the check.
func TestEncryptedDamage(t *testing.T) {
	ctx := context.Background()
	s := newSource(t, "a")
	s.history()
	key, err := crypt.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	raw := file.New(filepath.Join(t.TempDir(), "encrypted"))
	enc := crypt.Wrap(raw, crypt.Keys{Current: key})
	for level := range storage.MaxLevel + 1 {
		for _, f := range s.files(level) {
			b, err := os.ReadFile(s.filePath(f))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := enc.WriteLTXFile(ctx, level, f.MinTXID, f.MaxTXID, bytes.NewReader(b), f.CreatedAt); err != nil {
				t.Fatal(err)
			}
		}
	}
	if r, err := verify.Replica(ctx, enc, verify.Options{}); err != nil || !r.Whole() {
		t.Fatalf("the encrypted copy: %v\n%s", err, dump(r))
	}

	snaps := s.files(storage.SnapshotLevel)
	snap := snaps[len(snaps)-1]
	p := raw.LTXFilePath(storage.SnapshotLevel, snap.MinTXID, snap.MaxTXID)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	replaceFile(t, p, b)
	r, err := verify.Replica(ctx, enc, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustFind(t, r, verify.KindChecksum, storage.Describe(snap.Level, snap.MinTXID, snap.MaxTXID))

	replaceFile(t, p, b[:20])
	r, err = verify.Replica(ctx, enc, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Whole() {
		t.Fatalf("a snapshot cut inside its encryption header is whole:\n%s", dump(r))
	}
}
