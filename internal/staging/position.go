package staging

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/superfly/ltx"
)

// A WALPoint is where in the WAL a staged state was captured: the end of
// the frames it includes, in the log generation with these salts.
type WALPoint struct {
	Salt1, Salt2 uint32
	End          int64
}

// PointOf returns where the state after the LTX file with header h was
// captured, or nil if the file does not say. A file written for Litestream
// names the start of its WAL generation instead (storage.ToLitestream): its
// state is at a commit of that generation, which a resume finds by the
// state's checksum (tail.View.FindState).
func PointOf(h *ltx.Header) *WALPoint {
	if h == nil || h.WALOffset == 0 {
		return nil
	}
	return &WALPoint{Salt1: h.WALSalt1, Salt2: h.WALSalt2, End: h.WALOffset + h.WALSize}
}

// The position file records the newest staged position and where in the WAL
// its state was captured, so a restart can resume with a delta without
// reading a file back from a replica. It is a hint: the engine checks it by
// recomputing the database checksum, so it is not fsynced.
func (d *Dir) positionPath() string { return filepath.Join(d.path, "position") }

// WritePosition records pos as the newest staged position, captured at the
// WAL point at (nil: not from the WAL).
func (d *Dir) WritePosition(pos ltx.Pos, at *WALPoint) error {
	line := fmt.Sprintf("%s %s 0 0 0\n", pos.TXID, pos.PostApplyChecksum)
	if at != nil {
		line = fmt.Sprintf("%s %s %d %d %d\n", pos.TXID, pos.PostApplyChecksum, at.Salt1, at.Salt2, at.End)
	}
	tmp := d.positionPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(line), 0o644); err != nil {
		return fmt.Errorf("record the wal position: %w", err)
	}
	if err := os.Rename(tmp, d.positionPath()); err != nil {
		return fmt.Errorf("record the wal position: %w", err)
	}
	return nil
}

// ReadPosition returns the position the position file records, and where in
// the WAL its state was captured (nil: not from the WAL).
func (d *Dir) ReadPosition() (ltx.Pos, *WALPoint, error) {
	b, err := os.ReadFile(d.positionPath())
	if err != nil {
		return ltx.Pos{}, nil, err
	}
	return parsePosition(b)
}

func parsePosition(b []byte) (ltx.Pos, *WALPoint, error) {
	var txid, sum string
	var at WALPoint
	if _, err := fmt.Sscanf(string(b), "%s %s %d %d %d", &txid, &sum, &at.Salt1, &at.Salt2, &at.End); err != nil {
		return ltx.Pos{}, nil, err
	}
	t, err := ltx.ParseTXID(txid)
	if err != nil {
		return ltx.Pos{}, nil, err
	}
	c, err := ltx.ParseChecksum(sum)
	if err != nil {
		return ltx.Pos{}, nil, err
	}
	if at.End == 0 {
		return ltx.NewPos(t, c), nil, nil
	}
	return ltx.NewPos(t, c), &at, nil
}
