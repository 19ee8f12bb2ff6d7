package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/superfly/ltx"
)

// An encrypted object is a header and the object's bytes in chunks, each
// sealed with AES-256-GCM: the STREAM construction (Hoang, Reyhanitabar,
// Rogaway and Vizár, "Online Authenticated-Encryption and its
// Nonce-Reuse Misuse-Resistance"), as age uses it.
//
//	header  magic "walship" | version 1 | log2 of the chunk size |
//	        7 zero bytes | key ID (8 bytes) | salt (32 bytes)
//	chunks  AES-256-GCM(chunk i) and its 16-byte tag, every chunk but the
//	        last chunkSize bytes long before sealing; the last shorter or
//	        as long, and empty only if the whole object is
//
// Each object's AES key is derived from the replica's key and the object's
// random salt (HKDF-SHA-256), so no two objects share one. A chunk's nonce
// is its index (11 bytes) and a byte that is 1 for the last chunk only, so
// chunks cannot be reordered, dropped or added, nor the object cut short
// at a chunk boundary. Each chunk authenticates the header and the
// object's name (level and TXIDs), so an object cannot be moved to another
// name of the replica. Chunks have a fixed size, so a byte range of the
// object is read by reading the chunks that hold it.
const (
	magic       = "walship"
	version     = 1
	chunkLog2   = 16
	chunkSize   = 1 << chunkLog2
	tagSize     = 16
	sealedChunk = chunkSize + tagSize
	idSize      = 8
	saltSize    = 32
	headerSize  = len(magic) + 1 + 1 + 7 + idSize + saltSize
)

// Magic is how an encrypted object starts.
const Magic = magic + "\x01"

type header struct {
	keyID [idSize]byte
	salt  [saltSize]byte
}

func (h header) marshal() []byte {
	b := make([]byte, headerSize)
	copy(b, magic)
	b[len(magic)] = version
	b[len(magic)+1] = chunkLog2
	copy(b[len(magic)+9:], h.keyID[:])
	copy(b[len(magic)+9+idSize:], h.salt[:])
	return b
}

// errNotEncrypted is the error of parseHeader for bytes that do not start
// with Magic.
var errNotEncrypted = errors.New("not encrypted")

func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) < headerSize || string(b[:len(magic)]) != magic {
		return h, errNotEncrypted
	}
	if v := b[len(magic)]; v != version {
		return h, fmt.Errorf("encrypted in format version %d, which this walship does not read (it reads version %d): use a newer walship", v, version)
	}
	if b[len(magic)+1] != chunkLog2 {
		return h, fmt.Errorf("encrypted in chunks of 2^%d bytes, not 2^%d", b[len(magic)+1], chunkLog2)
	}
	copy(h.keyID[:], b[len(magic)+9:])
	copy(h.salt[:], b[len(magic)+9+idSize:])
	return h, nil
}

// aead returns the cipher of the object with header h, sealed with key k.
func (h header) aead(k Key) (cipher.AEAD, error) {
	ok, err := hkdf.Key(sha256.New, k[:], h.salt[:], "walship ltx object v1", KeySize)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(ok)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// additionalData is what every chunk of an object authenticates besides
// itself: the object's header and its name in the replica.
func additionalData(hdr []byte, level int, minTXID, maxTXID ltx.TXID) []byte {
	ad := make([]byte, 0, len(hdr)+17)
	ad = append(ad, hdr...)
	ad = append(ad, byte(level))
	ad = binary.BigEndian.AppendUint64(ad, uint64(minTXID))
	return binary.BigEndian.AppendUint64(ad, uint64(maxTXID))
}

// nonce returns the nonce of chunk i.
func nonce(i uint64, last bool) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n[3:11], i)
	if last {
		n[11] = 1
	}
	return n
}

// SealedSize returns the size of the encrypted object of a plaintext of n
// bytes.
func SealedSize(n int64) int64 {
	chunks := max(1, (n+chunkSize-1)/chunkSize)
	return int64(headerSize) + n + chunks*tagSize
}

// PlainSize returns the size of the plaintext of an encrypted object of n
// bytes; ok is false when no object is n bytes long.
func PlainSize(n int64) (size int64, ok bool) {
	n -= int64(headerSize)
	if n < tagSize {
		return 0, false
	}
	full, rest := n/sealedChunk, n%sealedChunk
	switch {
	case rest == 0:
		return full * chunkSize, true
	case rest == tagSize && full == 0:
		return 0, true
	case rest <= tagSize:
		return 0, false
	}
	return full*chunkSize + rest - tagSize, true
}
