package crypt_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/crypt"
	"github.com/walship/walship/storage/file"
)

const chunk = 1 << 16

func newKey(t *testing.T) crypt.Key {
	t.Helper()
	k, err := crypt.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func readAll(t *testing.T, c storage.Client, level int, minTXID, maxTXID ltx.TXID, off, n int64) ([]byte, error) {
	t.Helper()
	rc, err := c.OpenLTXFile(context.Background(), level, minTXID, maxTXID, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestRoundTrip: what is written reads back whole and by any byte range,
// whether the plaintext is a stream or a file (read at offsets, as S3's
// parallel upload does), with the plaintext's size in listings; what is
// stored is the sealed size, and holds no plaintext.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 100, chunk - 1, chunk, chunk + 1, 3 * chunk, 3*chunk + 17} {
		for _, stream := range []bool{false, true} {
			dir := t.TempDir()
			inner := file.New(filepath.Join(dir, "replica"))
			c := crypt.Wrap(inner, crypt.Keys{Current: newKey(t)})
			plain := bytes.Repeat([]byte("secret row "), size/11+1)[:size]
			var src io.Reader = bytes.NewReader(plain)
			if stream {
				// A reader that is not a ReaderAt and Seeker (bytes.Reader is both).
				src = io.MultiReader(bytes.NewReader(plain))
			} else {
				p := filepath.Join(dir, "plain")
				if err := os.WriteFile(p, plain, 0o600); err != nil {
					t.Fatal(err)
				}
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				src = f
			}
			info, err := c.WriteLTXFile(ctx, 0, 5, 6, src, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if info.Size != int64(size) {
				t.Errorf("size %d: WriteLTXFile says %d bytes", size, info.Size)
			}
			stored, err := os.ReadFile(inner.LTXFilePath(0, 5, 6))
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(stored)) != crypt.SealedSize(int64(size)) || !bytes.HasPrefix(stored, []byte(crypt.Magic)) {
				t.Fatalf("size %d: stored %d bytes; want %d, starting with the magic", size, len(stored), crypt.SealedSize(int64(size)))
			}
			if size > 0 && bytes.Contains(stored, []byte("secret row")) {
				t.Fatalf("size %d: the stored object holds the plaintext", size)
			}
			files, err := c.LTXFiles(ctx, 0)
			if err != nil || len(files) != 1 || files[0].Size != int64(size) {
				t.Fatalf("size %d: listing %v, %v; want one file of the plaintext's size", size, files, err)
			}
			got, err := readAll(t, c, 0, 5, 6, 0, 0)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("size %d: whole read: %d bytes, %v", size, len(got), err)
			}
			for range 40 {
				if size == 0 {
					break
				}
				off := rng.Int64N(int64(size))
				n := rng.Int64N(int64(size)-off) + 1
				if rng.IntN(4) == 0 {
					n = 0 // to the end
				}
				want := plain[off:]
				if n > 0 {
					want = plain[off : off+n]
				}
				got, err := readAll(t, c, 0, 5, 6, off, n)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("size %d: read %d bytes at %d: got %d bytes, %v", size, n, off, len(got), err)
				}
			}
		}
	}
}

func TestPlainSize(t *testing.T) {
	for n := int64(0); n < 5*chunk; n += 997 {
		for _, m := range []int64{n, chunk * (n / 997 % 5)} {
			if got, ok := crypt.PlainSize(crypt.SealedSize(m)); !ok || got != m {
				t.Fatalf("PlainSize(SealedSize(%d)) = %d, %v", m, got, ok)
			}
		}
	}
	if _, ok := crypt.PlainSize(crypt.SealedSize(chunk) + 5); ok {
		t.Error("a size no object has is taken for one")
	}
}

// TestTampering: every change to a stored object that is not the object
// written under its name fails the read, naming the object.
func TestTampering(t *testing.T) {
	ctx := context.Background()
	key := newKey(t)
	plain := make([]byte, 3*chunk+100)
	for i := range plain {
		plain[i] = byte(i * 7)
	}
	sealed := func(t *testing.T, level int, minTXID, maxTXID ltx.TXID) []byte {
		dir := t.TempDir()
		inner := file.New(dir)
		if _, err := crypt.Wrap(inner, crypt.Keys{Current: key}).WriteLTXFile(ctx, level, minTXID, maxTXID, bytes.NewReader(plain), time.Now()); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(inner.LTXFilePath(level, minTXID, maxTXID))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const hdr = 56
	chunkAt := func(i int) int { return hdr + i*(chunk+16) }
	tests := []struct {
		name   string
		change func(b []byte) []byte
	}{
		{"a byte of a chunk flipped", func(b []byte) []byte { b[chunkAt(1)+10] ^= 1; return b }},
		{"a byte of a tag flipped", func(b []byte) []byte { b[chunkAt(1)-1] ^= 1; return b }},
		{"the salt changed", func(b []byte) []byte { b[hdr-1] ^= 1; return b }},
		{"two chunks swapped", func(b []byte) []byte {
			out := append([]byte{}, b[:chunkAt(0)]...)
			out = append(out, b[chunkAt(1):chunkAt(2)]...)
			out = append(out, b[chunkAt(0):chunkAt(1)]...)
			return append(out, b[chunkAt(2):]...)
		}},
		{"cut at a chunk boundary", func(b []byte) []byte { return b[:chunkAt(2)] }},
		{"cut inside a chunk", func(b []byte) []byte { return b[:chunkAt(2)+500] }},
		{"a chunk dropped", func(b []byte) []byte { return append(append([]byte{}, b[:chunkAt(1)]...), b[chunkAt(2):]...) }},
		{"a chunk added", func(b []byte) []byte { return append(append([]byte{}, b...), b[chunkAt(0):chunkAt(1)]...) }},
		{"the object of another name", func([]byte) []byte { return sealed(t, 0, 7, 8) }},
		{"the object of another level", func([]byte) []byte { return sealed(t, 1, 5, 6) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			inner := file.New(dir)
			c := crypt.Wrap(inner, crypt.Keys{Current: key})
			p := inner.LTXFilePath(0, 5, 6)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, tt.change(sealed(t, 0, 5, 6)), 0o644); err != nil {
				t.Fatal(err)
			}
			files, err := c.LTXFiles(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = readAll(t, c, 0, 5, 6, 0, 0)
			if err == nil || !strings.Contains(err.Error(), "level 0 file 0000000000000005-0000000000000006.ltx") || !errors.Is(err, storage.ErrDamaged) {
				t.Fatalf("read whole: %v; want an error naming the file, wrapping ErrDamaged", err)
			}
			// A read of the end, as the trailer is read, fails too.
			size := files[0].Size
			if _, err := readAll(t, c, 0, 5, 6, max(0, size-16), 16); err == nil && tt.name != "a byte of a chunk flipped" && tt.name != "a byte of a tag flipped" && tt.name != "two chunks swapped" {
				t.Fatalf("read of the last 16 bytes succeeded")
			}
		})
	}
}

// TestKeys: an object reads with the key it was written with, current or
// old; with another, the error names both; an object that is not
// encrypted is refused with a key, and a key file others can read is
// refused.
func TestKeys(t *testing.T) {
	ctx := context.Background()
	oldKey, newKey_, other := newKey(t), newKey(t), newKey(t)
	inner := file.New(t.TempDir())
	if _, err := crypt.Wrap(inner, crypt.Keys{Current: oldKey}).WriteLTXFile(ctx, 0, 1, 1, strings.NewReader("old"), time.Now()); err != nil {
		t.Fatal(err)
	}
	rotated := crypt.Wrap(inner, crypt.Keys{Current: newKey_, Old: []crypt.Key{oldKey}})
	if _, err := rotated.WriteLTXFile(ctx, 0, 2, 2, strings.NewReader("new"), time.Now()); err != nil {
		t.Fatal(err)
	}
	for txid, want := range map[ltx.TXID]string{1: "old", 2: "new"} {
		if got, err := readAll(t, rotated, 0, txid, txid, 0, 0); err != nil || string(got) != want {
			t.Fatalf("TXID %d after rotation: %q, %v", txid, got, err)
		}
	}
	_, err := readAll(t, crypt.Wrap(inner, crypt.Keys{Current: other}), 0, 1, 1, 0, 0)
	if !errors.Is(err, crypt.ErrWrongKey) || !strings.Contains(err.Error(), oldKey.ID()) || !strings.Contains(err.Error(), other.ID()) {
		t.Fatalf("wrong key: %v; want ErrWrongKey naming both keys", err)
	}
	for _, k := range []crypt.Key{oldKey, other} {
		if strings.Contains(strings.ToLower(err.Error()), hex.EncodeToString(k[:16])) {
			t.Fatal("the error holds a key")
		}
	}
	if _, err := readAll(t, crypt.Wrap(inner, crypt.Keys{Current: other, Old: []crypt.Key{newKey_}}), 0, 1, 1, 0, 0); err == nil || !strings.Contains(err.Error(), newKey_.ID()+" (its old keys)") {
		t.Fatalf("wrong keys: %v; want the old keys named", err)
	}
	if !errors.Is(err, storage.ErrKey) {
		t.Fatalf("wrong key: %v is not storage.ErrKey, which is not retried", err)
	}

	if _, err := inner.WriteLTXFile(ctx, 0, 3, 3, strings.NewReader("LTX1 plain"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, rotated, 0, 3, 3, 0, 0); !errors.Is(err, crypt.ErrNotEncrypted) {
		t.Fatalf("a plain object: %v; want ErrNotEncrypted", err)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	if err := crypt.WriteKeyFile(path, oldKey); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if err := crypt.WriteKeyFile(path, newKey_); err == nil {
		t.Fatal("a key file was overwritten")
	}
	if k, err := crypt.ReadKeyFile(path); err != nil || k != oldKey {
		t.Fatalf("ReadKeyFile: %v", err)
	}
	raw := filepath.Join(dir, "raw")
	if err := os.WriteFile(raw, oldKey[:], 0o400); err != nil {
		t.Fatal(err)
	}
	if k, err := crypt.ReadKeyFile(raw); err != nil || k != oldKey {
		t.Fatalf("ReadKeyFile of a raw key: %v", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := crypt.ReadKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a group-readable key file: %v; want refused", err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), strings.Repeat("a", 63)} {
		if _, err := crypt.ParseKey([]byte(bad)); err == nil {
			t.Errorf("ParseKey(%q) succeeded", bad)
		}
	}
}
