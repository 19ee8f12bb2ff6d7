package restore_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/crypt"
	"github.com/walship/walship/storage/file"
)

// flipStored changes one byte in the middle of a file as the store holds
// it: an encrypted file that no longer authenticates.
func flipStored(t *testing.T, c *file.Client, level int, min, max ltx.TXID) {
	t.Helper()
	p := c.LTXFilePath(level, min, max)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreAroundDamagedEncrypted: an encrypted file that does not
// authenticate is a damaged file, gone around like one, whether it is
// streamed or downloaded; with no other way, the restore fails naming it
// and writes nothing.
func TestRestoreAroundDamagedEncrypted(t *testing.T) {
	h := tenTX()
	key, err := crypt.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, parallelism := range []int{1, 4} {
		c := newReplica(t)
		enc := crypt.Wrap(c, crypt.Keys{Current: key})
		writeAll(t, h, enc, refs(l9(3), l9(10), l0Each(4, 10)))
		flipStored(t, c, storage.SnapshotLevel, 1, 10)
		_, out := outPath(t)
		opts := noCheck
		opts.Parallelism = parallelism
		res, err := restore.Restore(context.Background(), enc, out, opts)
		if err != nil {
			t.Fatalf("parallelism %d: %v", parallelism, err)
		}
		checkRestored(t, h, 10, out, res, 8)
		if len(res.Damaged) != 1 || !strings.Contains(res.Damaged[0].Problem, "was altered") {
			t.Fatalf("parallelism %d: damaged %+v; want the snapshot, altered", parallelism, res.Damaged)
		}

		c = newReplica(t)
		enc = crypt.Wrap(c, crypt.Keys{Current: key})
		writeAll(t, h, enc, refs(l9(3), l0Each(4, 10)))
		flipStored(t, c, 0, 10, 10)
		dir, out := outPath(t)
		_, err = restore.Restore(context.Background(), enc, out, opts)
		if err == nil || !strings.Contains(err.Error(), "level 0 file 000000000000000a-000000000000000a.ltx") || !strings.Contains(err.Error(), "no other chain of files") {
			t.Fatalf("parallelism %d, no way around: %v", parallelism, err)
		}
		checkNothingWritten(t, dir)
	}
}

// TestDownloadDamagedEncrypted: a large encrypted file that does not
// authenticate, downloaded as ranges, is damaged: not retried, and the
// restore fails naming it.
func TestDownloadDamagedEncrypted(t *testing.T) {
	h := newHistory(65536)
	img := make([]byte, 300*65536)
	rand.NewChaCha8([32]byte{3}).Read(img)
	h.txImage(img)
	key, err := crypt.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	c := newReplica(t)
	writeAll(t, h, crypt.Wrap(c, crypt.Keys{Current: key}), refs(l9(1)))
	flipStored(t, c, storage.SnapshotLevel, 1, 1)
	dir, out := outPath(t)
	cc := newCountingClient(c, dir)
	_, err = restore.Restore(context.Background(), remote{crypt.Wrap(cc, crypt.Keys{Current: key})}, out, restore.Options{IntegrityCheck: "none", Parallelism: 4})
	if err == nil || !strings.Contains(err.Error(), "level 9 file 0000000000000001-0000000000000001.ltx") || !strings.Contains(err.Error(), "was altered") {
		t.Fatalf("restore: %v; want the snapshot named as altered", err)
	}
	if n := cc.opened[storage.Describe(storage.SnapshotLevel, 1, 1)]; n > 6 {
		t.Errorf("the snapshot was opened %d times: a damaged range was retried", n)
	}
	checkNothingWritten(t, dir)
}
