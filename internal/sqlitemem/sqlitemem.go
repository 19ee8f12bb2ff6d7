// Package sqlitemem trims the memory each SQLite connection of the process
// holds, for a replicator that keeps two idle connections open per database.
package sqlitemem

import (
	"fmt"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// NoLookaside turns off SQLite's per-connection lookaside allocator (about
// 50 KB a connection, allocated when the connection opens): the replicator
// runs a handful of statements a minute on each. It applies to connections
// opened afterwards, and fails once SQLite has initialised, so it must run
// before the process opens its first database.
func NoLookaside() error {
	tls := libc.NewTLS()
	defer tls.Close()
	if rc := sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_LOOKASIDE, libc.NewVaList(int32(0), int32(0))); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("sqlite3_config(SQLITE_CONFIG_LOOKASIDE): error %d", rc)
	}
	return nil
}
