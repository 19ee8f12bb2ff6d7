package storage

import (
	"fmt"
	"io"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/wal"
)

// Litestream 0.5's restore merges the files of its plan into one LTX stream
// flagged ltx.HeaderFlagNoChecksum and copies the post-apply checksum of the
// plan's last file into it, which the LTX encoder refuses unless it is zero:
// Litestream restores a TXID only if the file its plan ends with carries no
// database checksums. A replica that Litestream must restore (the
// litestream-compatible key) therefore receives every file in that form.
// walship keeps the database checksum after each such file in the header's
// NodeID field, which LTX reserves for LiteFS's node ID and which Litestream
// neither sets nor reads (its merges drop it), so that walship still proves
// every restore it makes of that replica, and knows the replica's newest
// state when it starts.

// PostApplyChecksum returns the database checksum after the file with this
// header and trailer: the trailer's, or, for a file without database
// checksums that walship wrote for Litestream, the one its header's NodeID
// holds (see ToLitestream). It is zero when the file does not say: a file
// Litestream wrote.
func PostApplyChecksum(hdr ltx.Header, trailer ltx.Trailer) ltx.Checksum {
	if !hdr.NoChecksum() {
		return trailer.PostApplyChecksum
	}
	if c := ltx.Checksum(hdr.NodeID); c&ltx.ChecksumFlag != 0 {
		return c
	}
	return 0
}

// ToLitestream copies the LTX file r to w in the form Litestream 0.5 restores:
// flagged ltx.HeaderFlagNoChecksum, with no pre- or post-apply checksum, and
// with post, the database checksum after the file, in the header's NodeID
// field (zero leaves it unset). Its WAL segment is the empty one at the start
// of the WAL generation it was captured in (see fromWALStart). The pages are
// decoded and encoded again, so r's file checksum is verified on the way and
// w gets a file checksum of its own. spillDir, if not empty, is where the
// encoder spills the page index of a large file.
func ToLitestream(w io.Writer, r io.Reader, post ltx.Checksum, spillDir string) (ltx.Header, error) {
	dec := ltx.NewDecoder(r)
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return ltx.Header{}, fmt.Errorf("decode header: %w", HeaderError(dec.Header(), err))
	}
	hdr := dec.Header()
	hdr.Flags |= ltx.HeaderFlagNoChecksum
	hdr.PreApplyChecksum = 0
	hdr.NodeID = uint64(post)
	fromWALStart(&hdr)
	enc, err := ltx.NewEncoder(w)
	if err != nil {
		return hdr, err
	}
	defer enc.Cleanup()
	if spillDir != "" {
		enc.SetSpillDir(spillDir)
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		return hdr, fmt.Errorf("encode header: %w", err)
	}
	var ph ltx.PageHeader
	data := make([]byte, hdr.PageSize)
	for {
		if err := dec.DecodePage(&ph, data); err == io.EOF {
			break
		} else if err != nil {
			return hdr, fmt.Errorf("decode page: %w", err)
		}
		if err := enc.EncodePage(ph, data); err != nil {
			return hdr, fmt.Errorf("encode page %d: %w", ph.Pgno, err)
		}
	}
	if err := dec.Close(); err != nil {
		return hdr, fmt.Errorf("the file is corrupt: %w", err)
	}
	if err := enc.Close(); err != nil {
		return hdr, fmt.Errorf("encode trailer: %w", err)
	}
	return hdr, nil
}

// fromWALStart points a level-0 file's WAL segment at the start of the WAL
// generation it was captured in (the salts it names; none for a file not
// read from a WAL), so that a Litestream started on the database after
// walship stops resumes safely. Litestream resumes from the WAL position
// its replica's newest level-0 file names, and takes the WAL for restarted
// right after that position when the salts changed: commits the application
// made after walship stopped, in the WAL generation that a checkpoint then
// restarted, would be missing from its replica. From the start of the
// generation, Litestream reads the whole WAL again if the generation is the
// same (each page it re-reads is one walship's file already holds, so the
// state after its next file is right), and otherwise takes a full snapshot.
func fromWALStart(hdr *ltx.Header) {
	hdr.WALOffset, hdr.WALSize = wal.HeaderSize, 0
}
