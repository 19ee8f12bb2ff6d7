package storage

import "github.com/superfly/ltx"

// FullCopy tells, from the page numbers of an LTX file in their order,
// whether the file holds every page of the database it describes (the lock
// page aside, which no file holds): the full copy walship writes when a
// database's page size changes, which a restore applies as a replacement
// of the whole database.
type FullCopy struct {
	commit, lock uint32
	next         uint32 // the page a full copy holds next
	broken       bool
}

// NewFullCopy starts the check of the file whose header is hdr.
func NewFullCopy(hdr ltx.Header) *FullCopy {
	return &FullCopy{commit: hdr.Commit, lock: ltx.LockPgno(hdr.PageSize), next: 1}
}

// See records the file's next page, pgno, and reports whether the file can
// still be a full copy.
func (c *FullCopy) See(pgno uint32) bool {
	if c.broken || pgno != c.next || pgno > c.commit {
		c.broken = true
		return false
	}
	if c.next++; c.next == c.lock {
		c.next++
	}
	return true
}

// Full reports whether the pages seen are every page of the database.
func (c *FullCopy) Full() bool { return !c.broken && c.next > c.commit }

// Missing returns the first page the file lacks, once Full is false
// (0 if it holds a page past the database's size instead).
func (c *FullCopy) Missing() uint32 {
	if c.next > c.commit {
		return 0
	}
	return c.next
}
