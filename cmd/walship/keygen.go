package main

import (
	"context"
	"fmt"

	"github.com/walship/walship/storage/crypt"
)

const keygenDescription = `Writes a new random encryption key to a new file at PATH, readable by its
owner alone (mode 0600), and prints the key's ID. Point a replica's
encryption-key-path at it. Keep a copy somewhere other than the replica and
this server: without the key, nothing in the replica can be restored.
Give each database its own key: a file of another database's replica
encrypted with the same key would authenticate. keygen never overwrites a
file.`

func runKeygen(ctx context.Context, e *env, args []string) error {
	flags := newFlagSet(e, "keygen", "PATH", keygenDescription)
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("keygen takes one argument, the path of the key file to write (got %d)", len(pos))
	}
	k, err := crypt.GenerateKey()
	if err != nil {
		return err
	}
	if err := crypt.WriteKeyFile(pos[0], k); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote key %s to %s\n", k.ID(), pos[0])
	return nil
}
