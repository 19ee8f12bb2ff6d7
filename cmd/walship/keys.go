package main

import (
	"flag"
	"strings"

	"github.com/walship/walship/config"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/crypt"
)

// keyFlags are the encryption key flags of the commands that read or
// write a replica given on the command line. They take precedence over a
// configured replica's keys.
type keyFlags struct {
	path *string
	old  *string
}

func addKeyFlags(fs *flag.FlagSet) *keyFlags {
	return &keyFlags{
		path: fs.String("encryption-key-path", "", "the replica is encrypted with the key in this `file` (overrides the config's)"),
		old:  fs.String("encryption-old-key-paths", "", "comma-separated key `files` that older files of the replica were encrypted with, before a key rotation"),
	}
}

// given reports whether a key flag was given.
func (k *keyFlags) given() bool { return k != nil && (*k.path != "" || *k.old != "") }

func (k *keyFlags) oldPaths() []string {
	if *k.old == "" {
		return nil
	}
	return strings.Split(*k.old, ",")
}

// wrap returns c encrypting and decrypting with the flags' keys, or, when
// none was given, c reporting a file that is encrypted as such.
func (k *keyFlags) wrap(c storage.Client) (storage.Client, error) {
	var ks *crypt.Keys
	if k.given() {
		var err error
		if ks, err = crypt.LoadKeys(nil, *k.path, k.oldPaths()); err != nil {
			return nil, err
		}
	}
	return crypt.With(c, ks), nil
}

// override returns r with the flags' keys instead of its own, or r when
// none was given.
func (k *keyFlags) override(r *config.Replica) *config.Replica {
	if !k.given() {
		return r
	}
	o := *r
	o.EncryptionKey, o.EncryptionKeyPath, o.EncryptionOldKeyPaths = nil, *k.path, k.oldPaths()
	return &o
}
