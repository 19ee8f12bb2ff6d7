package crypt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// TestEmptyLastChunk: an object of full chunks is read only without an
// empty chunk after them, which only an empty object has (else one
// plaintext would have two encrypted forms).
func TestEmptyLastChunk(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	h := header{keyID: k.id()}
	aead, err := h.aead(k)
	if err != nil {
		t.Fatal(err)
	}
	hdr := h.marshal()
	ad := additionalData(hdr, 0, 1, 1)
	plain := bytes.Repeat([]byte{3}, chunkSize)
	obj := append(bytes.Clone(hdr), aead.Seal(nil, nonce(0, false), plain, ad)...)
	obj = append(obj, aead.Seal(nil, nonce(1, true), nil, ad)...)

	dir := t.TempDir()
	inner := file.New(dir)
	p := inner.LTXFilePath(0, 1, 1)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, obj, 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := Wrap(inner, Keys{Current: k}).OpenLTXFile(context.Background(), 0, 1, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, storage.ErrDamaged) {
		t.Fatalf("read: %v; want the object refused", err)
	}
}

// TestPlaintextChangedDuringUpload: a chunk sealed again (an upload
// retried, or read in parts) from a plaintext that changed meanwhile fails
// the upload: its nonce would seal two plaintexts.
func TestPlaintextChangedDuringUpload(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(p, bytes.Repeat([]byte{1}, 3*chunkSize), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := seal(k, f, 0, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	ra := r.(io.ReaderAt)
	buf := make([]byte, sealedChunk)
	if _, err := ra.ReadAt(buf, int64(headerSize)+sealedChunk); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{2}, chunkSize+10); err != nil {
		t.Fatal(err)
	}
	// Forget the sealed chunk, as one pushed out of the recent ones is.
	r.(*sealedAt).forget(1)
	_, err = ra.ReadAt(buf, int64(headerSize)+sealedChunk)
	if err == nil || !strings.Contains(err.Error(), "changed while it was uploaded") {
		t.Fatalf("a changed plaintext sealed again: %v; want refused", err)
	}
}
