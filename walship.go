// Package walship replicates live SQLite databases. It tails each database's
// write-ahead log, turns every sync's committed transactions into one LTX
// file with exact pre- and post-apply checksums, stages it durably beside
// the database, and ships it to one or more replicas.
//
// This package is the engine's face: DB replicates one database, Store runs
// many in one process, Options tune them, and FromConfig builds them from a
// walship.yml. The work is done by the packages it wires together, along the
// data's path: internal/tail follows the WAL, internal/capture turns what it
// read into staged LTX files, internal/staging keeps them on disk,
// internal/ship uploads them, and internal/levels compacts and expires the
// replicas' history. docs/design.md says which invariants each keeps, and
// which test proves it; restore (package restore) reads it all back.
package walship
