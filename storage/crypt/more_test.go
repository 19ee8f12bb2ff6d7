package crypt_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/crypt"
	"github.com/walship/walship/storage/file"
	"github.com/walship/walship/storage/storagetest"
)

// TestConformance: a wrapped client is a storage.Client like any other.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Client {
		return crypt.Wrap(file.New(t.TempDir()), crypt.Keys{Current: newKey(t)})
	})
}

// TestRangesAtBoundaries: reads that start or end at chunk boundaries and
// at the end of the object get its bytes; reads past the end get none.
func TestRangesAtBoundaries(t *testing.T) {
	ctx := context.Background()
	for _, size := range []int64{0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk, 2*chunk + 5} {
		c := crypt.Wrap(file.New(t.TempDir()), crypt.Keys{Current: newKey(t)})
		plain := bytes.Repeat([]byte{7, 1, 9}, int(size))[:size]
		if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(plain), time.Now()); err != nil {
			t.Fatal(err)
		}
		for _, off := range []int64{0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk, size - 1, size, size + 1, size + chunk} {
			for _, n := range []int64{0, 1, chunk - 1, chunk, chunk + 1, size - off} {
				if off < 0 || n < 0 {
					continue
				}
				var want []byte
				if off < size {
					want = plain[off:]
					if n > 0 && off+n < size {
						want = plain[off : off+n]
					}
				}
				got, err := readAll(t, c, 0, 1, 1, off, n)
				if off > size && len(got) == 0 {
					continue // past the end: nothing, or an error
				}
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("size %d, %d bytes at %d: %d bytes, %v; want %d", size, n, off, len(got), err, len(want))
				}
			}
		}
	}
}

// TestSealedAtConcurrent: an upload that reads the encrypted object at
// offsets, from several goroutines, gets the bytes a sequential read does,
// with more chunks than are kept sealed, so that buffers are used again.
func TestSealedAtConcurrent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	plain := make([]byte, 50*chunk+123)
	for i := range plain {
		plain[i] = byte(i % 251)
	}
	p := filepath.Join(dir, "plain")
	if err := os.WriteFile(p, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sealed []byte
	inner := &captureClient{Client: file.New(filepath.Join(dir, "replica")), got: func(r io.Reader) {
		ra := r.(io.ReaderAt)
		size := r.(interface{ Size() int64 }).Size()
		sealed = make([]byte, size)
		const part = 3*chunk + 1000
		var wg sync.WaitGroup
		for off := int64(0); off < size; off += part {
			wg.Go(func() {
				for o := off; o < min(off+part, size); o += 5000 {
					if _, err := ra.ReadAt(sealed[o:min(o+5000, off+part, size)], o); err != nil && err != io.EOF {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
	}}
	c := crypt.Wrap(inner, crypt.Keys{Current: newKey(t)})
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, f, time.Now()); err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(inner.Client.(*file.Client).LTXFilePath(0, 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sealed, stored) {
		t.Fatal("reads at offsets differ from the sequential read")
	}
}

// captureClient hands the reader of each write to got before writing it.
type captureClient struct {
	storage.Client
	got func(io.Reader)
}

func (c *captureClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	c.got(r)
	if s, ok := r.(io.Seeker); ok {
		if _, err := s.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
	}
	return c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, r, createdAt)
}

// TestHeaderTampering: a change to any byte of the header fails the read,
// as a wrong version, a wrong key or damage.
func TestHeaderTampering(t *testing.T) {
	ctx := context.Background()
	key := newKey(t)
	dir := t.TempDir()
	inner := file.New(dir)
	c := crypt.Wrap(inner, crypt.Keys{Current: key})
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, strings.NewReader("some pages"), time.Now()); err != nil {
		t.Fatal(err)
	}
	p := inner.LTXFilePath(0, 1, 1)
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 56 {
		b := bytes.Clone(orig)
		b[i] ^= 0x40
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := readAll(t, c, 0, 1, 1, 0, 0); err == nil {
			t.Errorf("header byte %d changed: read %q", i, got)
		} else if strings.Contains(err.Error(), hex.EncodeToString(key[:])) {
			t.Errorf("the error shows the key: %v", err)
		}
	}
	// One byte more, read by range: the last chunk is no longer the last.
	if err := os.WriteFile(p, append(bytes.Clone(orig), 0), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, c, 0, 1, 1, 2, 3); err == nil {
		t.Error("an object with a byte added reads")
	}
}

func TestPlainSizeInvalid(t *testing.T) {
	for _, n := range []int64{0, 55, 56, 56 + 15, crypt.SealedSize(chunk) + 16, crypt.SealedSize(2*chunk) + 1, crypt.SealedSize(chunk) + 8} {
		if size, ok := crypt.PlainSize(n); ok {
			t.Errorf("PlainSize(%d) = %d; no encrypted object is %d bytes", n, size, n)
		}
	}
}
