package walship

import (
	"sync"
	"time"

	"github.com/superfly/ltx"
)

// maxCommits bounds the commit log while a replica stays behind for long
// (a stopped replica never catches up). Past it, neighbouring entries are
// merged keeping the earlier time, so a lag read from it can only be
// overstated, never hidden.
const maxCommits = 4096

// commitLog remembers when each staged TXID was captured, from the oldest
// that some replica does not hold yet: a replica's lag is the age of the
// first entry after its position.
type commitLog struct {
	mu      sync.Mutex
	entries []commit // by TXID
}

// commit says that the TXIDs after the previous entry's, up to TXID, were
// captured at At.
type commit struct {
	TXID ltx.TXID
	At   time.Time
}

// add records that TXIDs up to txid were captured at at; a TXID already
// recorded is ignored.
func (l *commitLog) add(txid ltx.TXID, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.entries); n > 0 && l.entries[n-1].TXID >= txid {
		return
	}
	l.entries = append(l.entries, commit{TXID: txid, At: at})
	if len(l.entries) > maxCommits {
		merged := l.entries[:0]
		for i := 0; i < len(l.entries); i += 2 {
			c := l.entries[i]
			if i+1 < len(l.entries) {
				c.TXID = l.entries[i+1].TXID
			}
			merged = append(merged, c)
		}
		l.entries = merged
	}
}

// forget drops what every replica holds: the entries up to txid.
func (l *commitLog) forget(txid ltx.TXID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := 0
	for i < len(l.entries) && l.entries[i].TXID <= txid {
		i++
	}
	l.entries = append(l.entries[:0], l.entries[i:]...)
}

// lag returns how long ago the oldest TXID after held was captured, zero
// when nothing after held was.
func (l *commitLog) lag(held ltx.TXID, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.entries {
		if c.TXID > held {
			return max(now.Sub(c.At), 0)
		}
	}
	return 0
}
