package config

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"
)

// Matches reports whether the file at dbPath is one the directory entry
// d replicates: under d.Dir (directly, or at any depth when Recursive),
// with a name matching Pattern. SQLite's own files beside a database
// (-wal, -shm, -journal) never match.
func (d *DB) Matches(dbPath string) bool {
	if d.Dir == "" {
		return false
	}
	rel, err := filepath.Rel(d.Dir, dbPath)
	if err != nil || rel == "." || !filepath.IsLocal(rel) {
		return false
	}
	if !d.Recursive && filepath.Dir(rel) != "." {
		return false
	}
	base := filepath.Base(rel)
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if strings.HasSuffix(base, suffix) {
			return false
		}
	}
	ok, _ := filepath.Match(d.Pattern, base)
	return ok
}

// ForDatabase returns the entry of one database found in the directory
// entry d, as Litestream 0.5 makes it: a copy of d for dbPath, whose
// replicas each write under their own path (URL or path:) followed by the
// database's path relative to d.Dir (e.g. s3://bkt/tenants/a/b.db for
// a/b.db), and whose staging directory, when meta-path or meta-dir is
// set, is its own under it.
func (d *DB) ForDatabase(dbPath string) (*DB, error) {
	if !d.Matches(dbPath) {
		return nil, fmt.Errorf("%s is not a database of the directory %s (pattern %q, recursive %t)", dbPath, d.Dir, d.Pattern, d.Recursive)
	}
	rel, _ := filepath.Rel(d.Dir, dbPath)
	c := *d
	c.Path, c.Dir, c.Pattern, c.Recursive, c.MetaDir = dbPath, "", "", false, ""
	relDir, file := filepath.Split(rel)
	switch {
	case d.MetaDir != "":
		c.MetaPath = filepath.Join(d.MetaDir, relDir, "."+file+"-walship")
	case d.MetaPath != "":
		c.MetaPath = filepath.Join(d.MetaPath, relDir, "."+file+"-walship")
	}
	c.Replica, c.Replicas = nil, nil
	if d.Replica != nil {
		r, err := d.Replica.under(rel)
		if err != nil {
			return nil, err
		}
		c.Replica = r
	}
	for _, base := range d.Replicas {
		r, err := base.under(rel)
		if err != nil {
			return nil, err
		}
		c.Replicas = append(c.Replicas, r)
	}
	return &c, nil
}

// under returns a copy of the replica that writes under its path followed
// by rel, a database's path relative to its directory entry.
func (r *Replica) under(rel string) (*Replica, error) {
	c := *r
	rel = filepath.ToSlash(rel)
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil {
			return nil, fmt.Errorf("replica %s: url is not valid: %w", r.DisplayName(), err)
		}
		u.Path = path.Join("/", u.Path, rel)
		if u.Host == "" && u.Scheme == "" {
			u.Path = path.Join(r.URL, rel) // a plain directory: keep it relative if it was
		}
		u.RawPath = ""
		c.URL = u.String()
		return &c, nil
	}
	if c.Backend() == "file" {
		c.Path = filepath.Join(c.Path, filepath.FromSlash(rel))
	} else {
		c.Path = path.Join(c.Path, rel)
	}
	return &c, nil
}

// Database returns the entry of the database at dbPath (absolute): the
// one of dbs: with that path, or else the one ForDatabase makes of the
// first directory entry the database belongs to; nil if none.
func (cfg *Config) Database(dbPath string) *DB {
	for _, db := range cfg.DBs {
		if db.Path == dbPath {
			return db
		}
	}
	for _, d := range cfg.Dirs {
		if db, err := d.ForDatabase(dbPath); err == nil {
			return db
		}
	}
	return nil
}
