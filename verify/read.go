package verify

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/walship/walship/storage"
)

// checked is one listed file and what reading it showed.
type checked struct {
	info    *ltx.FileInfo
	hdr     ltx.Header // valid when bad is nil
	trailer ltx.Trailer
	read    int64 // bytes read
	full    bool  // it holds every page of the database
	gone    bool  // deleted between the listing and the read
	// bad says why no restore can use the file (it does not decode, or it
	// is not the file its name says); nil for a sound file.
	bad *Problem
}

// sound reports whether the file was read whole and is what its name says.
func (c *checked) sound() bool { return !c.gone && c.bad == nil }

// sums reports whether the file is sound and carries database checksums.
func (c *checked) sums() bool { return c.sound() && !c.hdr.NoChecksum() }

// post returns the checksum of the state the file ends with, zero when it
// does not say (see storage.PostApplyChecksum): a file without database
// checksums that walship wrote for Litestream says it, one Litestream
// wrote does not.
func (c *checked) post() ltx.Checksum {
	if !c.sound() {
		return 0
	}
	return storage.PostApplyChecksum(c.hdr, c.trailer)
}

func (c *checked) name() string { return describe(c.info) }

func describe(f *ltx.FileInfo) string { return storage.Describe(f.Level, f.MinTXID, f.MaxTXID) }

// readAll reads every file, n at a time. The first error (a read that failed
// for another reason than the file's content) stops the others.
func readAll(ctx context.Context, c storage.Client, files []*ltx.FileInfo, n int, progress func(int)) ([]*checked, error) {
	out := make([]*checked, len(files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	for i, f := range files {
		g.Go(func() error {
			var err error
			out[i], err = readFile(gctx, c, f, progress)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// readFile streams one file through the LTX decoder, which checks its
// header, every page, the page index and the file checksum in the trailer,
// and for a snapshot the database checksum of its pages. A file that does
// not decode is a problem of the replica; a read that fails is an error.
func readFile(ctx context.Context, c storage.Reader, f *ltx.FileInfo, progress func(int)) (*checked, error) {
	ch := &checked{info: f}
	rc, err := c.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, 0, 0)
	if errors.Is(err, storage.ErrNotFound) {
		ch.gone = true
		return ch, nil
	} else if errors.Is(err, storage.ErrDamaged) {
		ch.bad = undecodable(f, err, 0) // an encrypted file cut short
		return ch, nil
	} else if err != nil {
		return nil, err // it names the replica
	}
	defer rc.Close()
	src := &storage.SourceReader{R: storage.ContextReader(ctx, rc)}
	counter := &storage.CountingReader{R: src, Each: progress}
	dec := ltx.NewDecoder(counter)
	dec.SetRetainPageIndex(false) // the index of a large snapshot is large
	ch.full, err = decodeAll(dec)
	ch.read = counter.N
	if err != nil {
		if src.Err != nil {
			return nil, fmt.Errorf("replica %s: read %s: %w", c, ch.name(), src.Err)
		}
		ch.bad = undecodable(f, storage.HeaderError(dec.Header(), err), counter.N)
		return ch, nil
	}
	ch.hdr, ch.trailer = dec.Header(), dec.Trailer()
	ch.bad = misnamed(f, ch.hdr)
	return ch, nil
}

// decodeAll reads the whole file through dec, which checks it as
// ltx.Decoder.Verify does, and reports whether the file holds every page of
// the database (the lock page aside, which no file holds).
func decodeAll(dec *ltx.Decoder) (full bool, err error) {
	if err := dec.DecodeHeader(); err != nil {
		return false, fmt.Errorf("decode header: %w", err)
	}
	hdr := dec.Header()
	fc := storage.NewFullCopy(hdr)
	var ph ltx.PageHeader
	data := make([]byte, hdr.PageSize)
	for i := 0; ; i++ {
		if err := dec.DecodePage(&ph, data); err == io.EOF {
			break
		} else if err != nil {
			return false, fmt.Errorf("decode page %d: %w", i, err)
		}
		fc.See(ph.Pgno)
	}
	if err := dec.Close(); err != nil {
		return false, fmt.Errorf("close reader: %w", err)
	}
	return fc.Full(), nil
}

// undecodable describes a file the decoder rejected.
func undecodable(f *ltx.FileInfo, err error, read int64) *Problem {
	p := &Problem{Object: describe(f), File: refOf(f)}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		p.Kind = KindTruncated
		p.Message = fmt.Sprintf("the file ends after %d bytes, before its trailer: it is truncated (an upload or copy cut short), or a length inside it is corrupt", read)
		return p
	}
	p.Kind = KindChecksum
	p.Message = fmt.Sprintf("the file is corrupt: its bytes are not the ones written (%v)", err)
	return p
}

// misnamed checks that a decoded file is the one its name and level say.
func misnamed(f *ltx.FileInfo, hdr ltx.Header) *Problem {
	p := &Problem{Kind: KindName, Object: describe(f), File: refOf(f)}
	switch {
	case hdr.MinTXID != f.MinTXID || hdr.MaxTXID != f.MaxTXID:
		p.Message = fmt.Sprintf("its header holds TXIDs %s-%s, not those of its name: it is another file under this name (copied or renamed by hand, or another database's)", hdr.MinTXID, hdr.MaxTXID)
	case f.Level == storage.SnapshotLevel && f.MinTXID != 1:
		p.Message = fmt.Sprintf("level %d holds snapshots, which start at TXID 1; this file starts at %s, so it is misplaced", storage.SnapshotLevel, f.MinTXID)
	default:
		return nil
	}
	return p
}
