package follow

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/fsutil"
)

// headerLen is how much of page 1 a state keeps: SQLite's database header.
const headerLen = 100

// altered lists the byte ranges of page 1 in which the copy differs from
// the replica's state: the file format versions (18-19: 1, rollback
// journal, where the primary has 2, WAL), the change counter and the
// database size (24-31), and the version-valid-for number and SQLite
// version (92-99). SQLite rewrites 24-27 and 92-99 at every commit to the
// copy; the follower writes 18-19 and 28-31. Every other byte of the copy
// is the state's.
var altered = [][2]int{{18, 20}, {24, 32}, {92, 100}}

// normalize puts the state's bytes of the altered ranges, from header, into
// a copy of page 1.
func normalize(page1, header []byte) []byte {
	p := append([]byte(nil), page1...)
	for _, r := range altered {
		copy(p[r[0]:r[1]], header[r[0]:r[1]])
	}
	return p
}

// patch turns the state's page 1 into the copy's: rollback-journal mode,
// and the in-header database size of commit pages (SQLite trusts it once
// the commit makes the version-valid-for number equal the change counter).
func patch(page1 []byte, commit uint32) []byte {
	p := append([]byte(nil), page1...)
	p[18], p[19] = 1, 1
	p[28], p[29], p[30], p[31] = byte(commit>>24), byte(commit>>16), byte(commit>>8), byte(commit)
	return p
}

// recordedState is one state the copy may hold: the replica's TXID and
// database checksum, and the state's own page-1 header, which the copy
// alters (see altered).
type recordedState struct {
	TXID     uint64 `json:"txid"`
	Checksum uint64 `json:"checksum"`
	PageSize uint32 `json:"page_size"`
	Pages    uint32 `json:"pages"`
	Header   []byte `json:"header"`
}

// record is the follower's file beside the copy (.NAME.follow). It names
// the states the copy may hold: one, or, while a batch is committed, the
// state before and the state after it, since SQLite's commit and the
// record's rename cannot be one atomic step. At start-up the copy's own
// pages decide which one it holds (see proveCopy); a copy that holds none
// was changed by something else and is never written.
type record struct {
	Version int             `json:"version"`
	Replica string          `json:"replica"`
	States  []recordedState `json:"states"`
}

func recordPath(out string) string {
	return filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".follow")
}

func lockPath(out string) string {
	return filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".follow-lock")
}

// readRecord reads the record of the copy at out; nil if there is none.
func readRecord(out string) (*record, error) {
	b, err := os.ReadFile(recordPath(out))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the follower's record: %w", err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil || r.Version != 1 || len(r.States) == 0 {
		return nil, fmt.Errorf("the follower's record %s is damaged (%v): delete %s and it to restore the copy again", recordPath(out), err, out)
	}
	for _, s := range r.States {
		if len(s.Header) != headerLen {
			return nil, fmt.Errorf("the follower's record %s is damaged (a header of %d bytes): delete %s and it to restore the copy again", recordPath(out), len(s.Header), out)
		}
	}
	return &r, nil
}

// writeRecord replaces the record durably and atomically.
func writeRecord(out, replica string, states ...recordedState) error {
	b, err := json.Marshal(record{Version: 1, Replica: replica, States: states})
	if err != nil {
		return err
	}
	if err := fsutil.WriteFile(recordPath(out), b, 0o644); err != nil {
		return fmt.Errorf("write the follower's record %s: %w", recordPath(out), err)
	}
	return nil
}

func (s recordedState) txid() ltx.TXID         { return ltx.TXID(s.TXID) }
func (s recordedState) checksum() ltx.Checksum { return ltx.Checksum(s.Checksum) }

// Forget removes what makes the database at out a follower's copy (its
// record and lock file), once it stopped being one: a standby promoted it
// to the live database, which the application now writes. Run must not
// be running on it.
func Forget(out string) error {
	for _, p := range []string{recordPath(out), lockPath(out)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the follower's file %s: %w", p, err)
		}
	}
	return nil
}
