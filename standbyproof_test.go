package walship_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"
)

// makeMid turns the copy at path, stopped, into the state an interrupted
// page-size change leaves (follow/resize.go): the replica's state but for
// the schema cookie the backup API gives page 1 (the old one plus one),
// with the record naming that state, as resize writes it, so that the next
// start proves the copy against its record.
func makeMid(t *testing.T, path string) {
	t.Helper()
	recPath := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".follow")
	b, err := os.ReadFile(recPath)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Version int    `json:"version"`
		Replica string `json:"replica"`
		States  []struct {
			TXID     uint64 `json:"txid"`
			Checksum uint64 `json:"checksum"`
			PageSize uint32 `json:"page_size"`
			Pages    uint32 `json:"pages"`
			Header   []byte `json:"header"`
		} `json:"states"`
	}
	if err := json.Unmarshal(b, &rec); err != nil || len(rec.States) != 1 {
		t.Fatalf("record %s: %v (%d states)", recPath, err, len(rec.States))
	}
	s := &rec.States[0]
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page1 := make([]byte, s.PageSize)
	if _, err := f.ReadAt(page1, 0); err != nil {
		t.Fatal(err)
	}
	norm := func(p, h []byte) []byte {
		p = append([]byte(nil), p...)
		for _, r := range [][2]int{{18, 20}, {24, 32}, {92, 100}} {
			copy(p[r[0]:r[1]], h[r[0]:r[1]])
		}
		return p
	}
	before := ltx.ChecksumPage(1, norm(page1, s.Header))
	cookie := binary.BigEndian.Uint32(page1[40:44]) + 1
	binary.BigEndian.PutUint32(page1[40:44], cookie)
	binary.BigEndian.PutUint32(s.Header[40:44], cookie)
	after := ltx.ChecksumPage(1, norm(page1, s.Header))
	s.Checksum = uint64(ltx.ChecksumFlag | (ltx.Checksum(s.Checksum) ^ before ^ after))
	if _, err := f.WriteAt(page1, 0); err != nil {
		t.Fatal(err)
	}
	if b, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(recPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStandbyNeverPromotesUnprovenCopy: a standby restarted on a copy
// its record proves but the replica does not (here: the state an
// interrupted page-size change leaves, whose schema cookie is not the
// replica's; the replica's file of that TXID cut short, so the follower
// cannot rebase) must not promote it when the primary's lease expires
// (README: "cannot promote while the replica's newest state does not
// restore"). It promoted at once when Opened stored the record's TXID as
// copyTXID, which catchUp took for the replica's.
func TestStandbyNeverPromotesUnprovenCopy(t *testing.T) {
	ttl := 2 * time.Second
	a := auditedPrimary(t, ttl)
	a.exec("INSERT INTO t (v) VALUES (randomblob(3000))")
	last := a.sync()
	bPath := filepath.Join(t.TempDir(), "standby.db")
	b, res, stop := runStandby(t, a, bPath, ttl)
	waitStandbyTXID(t, b, res, last)
	stop()

	makeMid(t, bPath)
	name := a.replica.LTXFilePath(0, last, last)
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(name, fi.Size()*2/3); err != nil {
		t.Fatal(err)
	}
	// The primary stops: its lease is released or expires.
	if err := a.db.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, res, _ = runStandby(t, a, bPath, ttl)
	waitStandbyFailing(t, b, res, last)
	select {
	case r := <-res:
		want, _ := os.ReadFile(bPath)
		t.Fatalf("the standby promoted a copy its follower never proved against the replica: %+v, %v (%d bytes)", r.p, r.err, len(want))
	case <-time.After(3 * ttl):
	}
}
