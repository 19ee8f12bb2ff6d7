// Package crypt encrypts a replica's LTX files before they leave the
// machine, and decrypts and authenticates them when they are read: a
// storage.Client wrapped by Wrap stores only ciphertext, and refuses an
// object that was altered, cut short, moved to another name, or written
// with a key it was not given. The object store sees the objects' names,
// sizes and times, not their contents. See format.go for the format.
package crypt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
)

// ErrWrongKey is wrapped by the error of reading an object written with a
// key the client was not given.
var ErrWrongKey error = keyError("written with another encryption key")

// ErrNotEncrypted is wrapped by the error of reading an object that is not
// encrypted through a client that was given a key.
var ErrNotEncrypted error = keyError("not encrypted")

// keyError is an error of the keys given, which is also storage.ErrKey.
type keyError string

func (e keyError) Error() string        { return string(e) }
func (e keyError) Is(target error) bool { return target == storage.ErrKey }

// ErrEncrypted is wrapped by the error of reading an encrypted object
// through a client that was given no key (Guard).
var ErrEncrypted error = keyError("encrypted")

// Keys are a replica's encryption keys: Current seals what is written, and
// opens what was written with it; Old only open, objects written before a
// key rotation.
type Keys struct {
	Current Key
	Old     []Key
}

// find returns the key with the given ID.
func (ks Keys) find(id [idSize]byte) (Key, bool) {
	for _, k := range append([]Key{ks.Current}, ks.Old...) {
		if k.id() == id {
			return k, true
		}
	}
	return Key{}, false
}

// ids names the keys for messages.
func (ks Keys) ids() string {
	s := ks.Current.ID() + " (this replica's key)"
	if len(ks.Old) > 0 {
		var old []string
		for _, k := range ks.Old {
			old = append(old, k.ID())
		}
		s += " or " + strings.Join(old, ", ") + " (its old keys)"
	}
	return s
}

// Wrap returns c, with every LTX file encrypted with keys.Current when it
// is written, and decrypted and authenticated with the key it names when
// it is read. Sizes are the plaintext's, so callers read byte ranges of an
// LTX file as if it were stored plain. Records (the owner record) and the
// raw objects of storage.Objects are not encrypted: they hold no database
// content.
func Wrap(c storage.Client, keys Keys) storage.Client {
	return wrap(&client{Client: c, keys: &keys})
}

// Guard returns c, for a replica given no key: a file that is encrypted is
// then reported as such, naming the key it was written with, rather than
// as a file that is not LTX. Everything else passes through.
func Guard(c storage.Client) storage.Client {
	return wrap(&client{Client: c})
}

// With returns c wrapped with keys (Wrap), or guarded when keys is nil
// (Guard): what every replica a command or the config opens goes through.
func With(c storage.Client, keys *Keys) storage.Client {
	if keys == nil {
		return Guard(c)
	}
	return Wrap(c, *keys)
}

func wrap(w *client) storage.Client {
	if o, ok := w.Client.(storage.Objects); ok {
		return &clientObjects{client: w, Objects: o}
	}
	return w
}

type client struct {
	storage.Client
	keys *Keys // nil: Guard's
}

type clientObjects struct {
	*client
	storage.Objects
}

// RangedReads is the wrapped client's.
func (c *client) RangedReads() bool {
	rr, ok := c.Client.(storage.RangeReader)
	return !ok || rr.RangedReads()
}

// Close closes the wrapped client, if it holds connections.
func (c *client) Close() error {
	if cl, ok := c.Client.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

func (c *client) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	files, err := c.Client.LTXFiles(ctx, level)
	if err != nil || c.keys == nil {
		return files, err
	}
	for _, f := range files {
		c.plainSize(f)
	}
	return files, nil
}

// plainSize sets f's size to its plaintext's. An object of a size no
// encrypted object has keeps its own, and fails when it is read.
func (c *client) plainSize(f *ltx.FileInfo) {
	if n, ok := PlainSize(f.Size); ok {
		f.Size = n
	}
}

func (c *client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader, createdAt time.Time) (*ltx.FileInfo, error) {
	if c.keys == nil {
		return c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, r, createdAt)
	}
	sealed, err := seal(c.keys.Current, r, level, minTXID, maxTXID)
	if err != nil {
		return nil, fmt.Errorf("replica %s: %s: %w", c.Client, storage.Describe(level, minTXID, maxTXID), err)
	}
	f, err := c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, sealed, createdAt)
	if err != nil {
		return nil, err
	}
	c.plainSize(f)
	return f, nil
}

func (c *client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	name := storage.Describe(level, minTXID, maxTXID)
	if c.keys == nil {
		return c.openPlain(ctx, name, level, minTXID, maxTXID, offset, size)
	}
	first := offset / chunkSize
	// The chunks that hold the range, and a byte more, which says whether
	// the last of them is the object's last.
	var n int64
	if size > 0 {
		n = ((offset+size-1)/chunkSize-first+1)*sealedChunk + 1
	}
	start := int64(headerSize) + first*sealedChunk
	if first == 0 {
		// The header and the chunks in one read.
		start = 0
		if n > 0 {
			n += int64(headerSize)
		}
	}

	hdrBytes := make([]byte, headerSize)
	var rc io.ReadCloser
	if first > 0 {
		hr, err := c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID, 0, int64(headerSize))
		if err != nil {
			return nil, err
		}
		n, err := io.ReadFull(hr, hdrBytes)
		hr.Close()
		if err != nil {
			return nil, c.readError(name, hdrBytes[:n], err)
		}
	}
	rc, err := c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID, start, n)
	if err != nil {
		return nil, err
	}
	src := bufio.NewReaderSize(rc, sealedChunk)
	if first == 0 {
		if n, err := io.ReadFull(src, hdrBytes); err != nil {
			rc.Close()
			return nil, c.readError(name, hdrBytes[:n], err)
		}
	}
	aead, ad, err := c.open(name, hdrBytes, level, minTXID, maxTXID)
	if err != nil {
		rc.Close()
		return nil, err
	}
	remain := size
	if size == 0 {
		remain = -1
	}
	failed := func(err error) error {
		return fmt.Errorf("replica %s: %s was altered, cut short or moved from another name: %v (%w)", c.Client, name, err, storage.ErrDamaged)
	}
	return &opened{
		aead: aead, ad: ad, src: src, closer: rc,
		first: uint64(first), next: uint64(first), skip: offset - first*chunkSize, remain: remain,
		failed: failed,
		atEnd: func() error {
			// The object ends where the read starts, or was cut short
			// there: the chunk before says which.
			prev, err := c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID, start-sealedChunk, sealedChunk)
			if err != nil {
				return err
			}
			defer prev.Close()
			b, err := io.ReadAll(prev)
			if err != nil {
				return err
			}
			if _, err := aead.Open(b[:0], nonce(uint64(first-1), true), b, ad); err != nil || len(b) != sealedChunk {
				return failed(fmt.Errorf("chunk %d is not the last", first-1))
			}
			return nil
		},
	}, nil
}

// open returns the cipher of the object with header hdr, and the data its
// chunks authenticate.
func (c *client) open(name string, hdr []byte, level int, minTXID, maxTXID ltx.TXID) (cipher.AEAD, []byte, error) {
	h, err := parseHeader(hdr)
	switch {
	case errors.Is(err, errNotEncrypted) && bytes.HasPrefix(hdr, []byte("LTX")):
		return nil, nil, fmt.Errorf("replica %s: %s is %w, and this replica is given an encryption key: it was written before encryption was turned on for this replica, or by someone without the key. "+
			"Encryption applies to a new replica: give this one a new path (walship writes a full copy there), and read the old one without a key", c.Client, name, ErrNotEncrypted)
	case errors.Is(err, errNotEncrypted):
		return nil, nil, fmt.Errorf("replica %s: %s is neither an encrypted file nor an LTX file (%w)", c.Client, name, storage.ErrDamaged)
	case err != nil:
		return nil, nil, fmt.Errorf("replica %s: %s: %w", c.Client, name, err)
	}
	k, ok := c.keys.find(h.keyID)
	if !ok {
		return nil, nil, fmt.Errorf("replica %s: %s was %w %x, not with %s: give walship the key it was written with (after a rotation, list the old key in encryption-old-key-paths), unless its header was altered",
			c.Client, name, ErrWrongKey, h.keyID, c.keys.ids())
	}
	aead, err := h.aead(k)
	if err != nil {
		return nil, nil, fmt.Errorf("replica %s: %s: %w", c.Client, name, err)
	}
	return aead, additionalData(hdr, level, minTXID, maxTXID), nil
}

// readError is the error of a read of an object's header that got only
// the bytes b.
func (c *client) readError(name string, b []byte, err error) error {
	if bytes.HasPrefix(b, []byte("LTX")) {
		_, _, err := c.open(name, b, 0, 0, 0)
		return err // not encrypted
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("replica %s: %s is cut short: it ends inside its encryption header (%w)", c.Client, name, storage.ErrDamaged)
	}
	return err // the backend's, which names the replica
}

// openPlain is OpenLTXFile for a replica given no key: a read from the
// start of a file that turns out to be encrypted fails, saying so.
func (c *client) openPlain(ctx context.Context, name string, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	rc, err := c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil || offset != 0 {
		return rc, err
	}
	br := bufio.NewReader(rc)
	if b, _ := br.Peek(headerSize); len(b) == headerSize {
		if h, err := parseHeader(b); !errors.Is(err, errNotEncrypted) {
			rc.Close()
			return nil, fmt.Errorf("replica %s: %s is %w with key %x, and walship was given no key for this replica: set encryption-key-path on the replica in the config, or pass -encryption-key-path",
				c.Client, name, ErrEncrypted, h.keyID)
		}
	}
	return struct {
		io.Reader
		io.Closer
	}{br, rc}, nil
}

// RecordsAtomic is the wrapped client's (storage.RecordsAtomic).
func (c *client) RecordsAtomic() error { return storage.RecordsAtomic(c.Client) }
