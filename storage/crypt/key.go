package crypt

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// KeySize is the size of a key: AES-256.
const KeySize = 32

// A Key is a replica's secret key. Each object is sealed with a key derived
// from it and a random salt of the object's own.
type Key [KeySize]byte

// ID names the key in object headers and messages: a hash of the key, from
// which the key cannot be learnt.
func (k Key) ID() string {
	id := k.id()
	return hex.EncodeToString(id[:])
}

func (k Key) id() (id [idSize]byte) {
	h := sha256.Sum256(append([]byte("walship encryption key id\x00"), k[:]...))
	copy(id[:], h[:])
	return id
}

// String never shows the key.
func (k Key) String() string { return "key " + k.ID() }

// GoString never shows the key.
func (k Key) GoString() string { return k.String() }

// GenerateKey returns a new random key.
func GenerateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("generate a key: %w", err)
	}
	return k, nil
}

// ParseKey reads a key written as 64 hexadecimal characters or as its 32
// raw bytes. Whitespace around the hexadecimal form is ignored.
func ParseKey(b []byte) (Key, error) {
	var k Key
	if t := bytes.TrimSpace(b); len(t) == 2*KeySize {
		if _, err := hex.Decode(k[:], t); err == nil {
			return k, nil
		}
	}
	if len(b) == KeySize {
		copy(k[:], b)
		return k, nil
	}
	return Key{}, errors.New("an encryption key is 64 hexadecimal characters or 32 raw bytes (walship keygen writes one)")
}

// ReadKeyFile reads the key in the file at path, which must be readable by
// its owner alone: a key the group or others can read is refused.
func ReadKeyFile(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("encryption key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("encryption key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, fmt.Errorf("encryption key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Key{}, fmt.Errorf("encryption key file %s can be read by others (mode %#o): make it readable by its owner alone (chmod 600 %s)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4*KeySize))
	if err != nil {
		return Key{}, fmt.Errorf("encryption key file %s: %w", path, err)
	}
	k, err := ParseKey(b)
	if err != nil {
		return Key{}, fmt.Errorf("encryption key file %s: %w", path, err)
	}
	return k, nil
}

// WriteKeyFile writes k to a new file at path, as 64 hexadecimal characters
// and a newline, readable and writable by its owner alone. It never
// overwrites a file: a key replaced by mistake makes its replica
// unreadable.
func WriteKeyFile(path string, k Key) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; walship does not overwrite a key file (the replicas written with that key could no longer be read): choose another path", path)
	}
	if err != nil {
		return fmt.Errorf("write the key file: %w", err)
	}
	if _, err := fmt.Fprintf(f, "%s\n", hex.EncodeToString(k[:])); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write the key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write the key file %s: %w", path, err)
	}
	return f.Close()
}

// LoadKeys returns a replica's keys: the current one, given (key) or read
// from the file at keyPath, and the old ones read from the files at
// oldPaths. It returns nil when neither key nor keyPath is given.
func LoadKeys(key *Key, keyPath string, oldPaths []string) (*Keys, error) {
	var ks Keys
	switch {
	case key != nil && keyPath != "":
		return nil, errors.New("an encryption key and an encryption key file are both given; give one")
	case key != nil:
		ks.Current = *key
	case keyPath != "":
		k, err := ReadKeyFile(keyPath)
		if err != nil {
			return nil, err
		}
		ks.Current = k
	case len(oldPaths) > 0:
		return nil, errors.New("old encryption keys are given without the current key, which encrypts what is written from now on")
	default:
		return nil, nil
	}
	for _, p := range oldPaths {
		k, err := ReadKeyFile(p)
		if err != nil {
			return nil, err
		}
		ks.Old = append(ks.Old, k)
	}
	return &ks, nil
}
