package capture

import (
	"iter"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/crc64iso"
	"github.com/walship/walship/internal/pagesum"
	"github.com/walship/walship/internal/tail"
)

// encodePages reads each of the n pages of pgnos (ascending), records its
// checksum in next and encodes it. If want is not nil, each page must have
// the checksum it has in want, or the page changed since want was computed
// and tail.ErrRestarted is returned. encoded, if not nil, is told the bytes
// of each page encoded.
func encodePages(enc *ltx.Encoder, pr *tail.PageReader, n int, pgnos iter.Seq[uint32], next, want *pagesum.State, encoded func(n int)) error {
	if encoded == nil {
		encoded = func(int) {}
	}
	if n >= pipelinePages {
		return encodePagesPipelined(enc, pr, pgnos, next, want, encoded)
	}
	buf := make([]byte, pr.PageSize())
	h := crc64iso.New()
	for pgno := range pgnos {
		if err := pr.ReadPage(pgno, buf); err != nil {
			return err
		}
		c := ltx.ChecksumPageWithHasher(h, pgno, buf)
		if err := check(want, pgno, c); err != nil {
			return err
		}
		if err := next.Set(pgno, c); err != nil {
			return err
		}
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, buf); err != nil {
			return err
		}
		encoded(len(buf))
	}
	return nil
}

// Past pipelinePages pages (a full copy, or a large transaction), pages are
// read and checksummed in one goroutine while another compresses and writes
// them, batchPages at a time, in at most three batches' worth of memory.
const (
	pipelinePages = 1024
	batchPages    = 64
)

type pageBatch struct {
	pgnos []uint32
	data  []byte
	sums  []ltx.Checksum
	err   error
}

func encodePagesPipelined(enc *ltx.Encoder, pr *tail.PageReader, pgnos iter.Seq[uint32], next, want *pagesum.State, encoded func(n int)) error {
	ps := int(pr.PageSize())
	free := make(chan *pageBatch, 3)
	for range cap(free) {
		free <- &pageBatch{pgnos: make([]uint32, 0, batchPages), data: make([]byte, batchPages*ps), sums: make([]ltx.Checksum, batchPages)}
	}
	full := make(chan *pageBatch, cap(free))
	stop := make(chan struct{})
	go func() {
		defer close(full)
		h := crc64iso.New()
		var b *pageBatch
		// send hands b, filled, to the encoder, and reports whether to go on.
		send := func() bool {
			select {
			case full <- b:
			case <-stop:
				return false
			}
			b = nil
			return true
		}
		for pgno := range pgnos {
			if b == nil {
				select {
				case b = <-free:
				case <-stop:
					return
				}
				b.pgnos = b.pgnos[:0]
			}
			j := len(b.pgnos)
			b.pgnos = append(b.pgnos, pgno)
			page := b.data[j*ps : (j+1)*ps]
			if b.err = pr.ReadPage(pgno, page); b.err != nil {
				send()
				return
			}
			b.sums[j] = ltx.ChecksumPageWithHasher(h, pgno, page)
			if len(b.pgnos) == batchPages && !send() {
				return
			}
		}
		if b != nil {
			send()
		}
	}()
	defer func() {
		close(stop)
		for range full {
		}
	}()
	for b := range full {
		if b.err != nil {
			return b.err
		}
		for j, pgno := range b.pgnos {
			c := b.sums[j]
			if err := check(want, pgno, c); err != nil {
				return err
			}
			if err := next.Set(pgno, c); err != nil {
				return err
			}
			if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, b.data[j*ps:(j+1)*ps]); err != nil {
				return err
			}
		}
		encoded(len(b.pgnos) * ps)
		free <- b
	}
	return nil
}

// check returns tail.ErrRestarted if want is not nil and page pgno's
// checksum there is not c.
func check(want *pagesum.State, pgno uint32, c ltx.Checksum) error {
	if want == nil {
		return nil
	}
	w, err := want.Sum(pgno)
	if err != nil {
		return err
	}
	if w != c {
		return tail.ErrRestarted
	}
	return nil
}
