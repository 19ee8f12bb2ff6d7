// Package litestream finds a Litestream process that replicates a database
// walship is about to take over: two replicators writing one replica would
// number their commits from the same TXIDs and overwrite each other's
// files.
//
// Litestream 0.5 keeps its database open for as long as it replicates it.
// On Linux, a process named litestream that holds the database file open
// is found through /proc (only among the processes whose descriptors this
// one may read: those of its own user, or all as root); elsewhere, and for
// a Litestream in another container or on another host, nothing is found.
package litestream

// A Process is a running Litestream that has the database open, or whose
// open files this process may not read (Unreadable): it may have it open.
type Process struct {
	PID        int
	Name       string // its command name
	Unreadable bool
}
