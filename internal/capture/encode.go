package capture

import (
	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/crc64iso"
	"github.com/walship/walship/internal/pagesum"
	"github.com/walship/walship/internal/tail"
)

// encodePages reads each page of pgnos (ascending), records its checksum in
// next and encodes it. If want is not nil, each page must have the checksum
// want[pgno-1], or the page changed since want was computed and
// tail.ErrRestarted is returned. encoded, if not nil, is told the bytes of
// each page encoded.
func encodePages(enc *ltx.Encoder, pr *tail.PageReader, pgnos []uint32, next *pagesum.State, want []ltx.Checksum, encoded func(n int)) error {
	if encoded == nil {
		encoded = func(int) {}
	}
	if len(pgnos) >= pipelinePages {
		return encodePagesPipelined(enc, pr, pgnos, next, want, encoded)
	}
	buf := make([]byte, pr.PageSize())
	h := crc64iso.New()
	for _, pgno := range pgnos {
		if err := pr.ReadPage(pgno, buf); err != nil {
			return err
		}
		c := ltx.ChecksumPageWithHasher(h, pgno, buf)
		if want != nil && c != want[pgno-1] {
			return tail.ErrRestarted
		}
		next.Set(pgno, c)
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

func encodePagesPipelined(enc *ltx.Encoder, pr *tail.PageReader, pgnos []uint32, next *pagesum.State, want []ltx.Checksum, encoded func(n int)) error {
	ps := int(pr.PageSize())
	free := make(chan *pageBatch, 3)
	for range cap(free) {
		free <- &pageBatch{data: make([]byte, batchPages*ps), sums: make([]ltx.Checksum, batchPages)}
	}
	full := make(chan *pageBatch, cap(free))
	stop := make(chan struct{})
	go func() {
		defer close(full)
		h := crc64iso.New()
		for i := 0; i < len(pgnos); i += batchPages {
			var b *pageBatch
			select {
			case b = <-free:
			case <-stop:
				return
			}
			b.pgnos = pgnos[i:min(i+batchPages, len(pgnos))]
			for j, pgno := range b.pgnos {
				page := b.data[j*ps : (j+1)*ps]
				if b.err = pr.ReadPage(pgno, page); b.err != nil {
					break
				}
				b.sums[j] = ltx.ChecksumPageWithHasher(h, pgno, page)
			}
			select {
			case full <- b:
			case <-stop:
				return
			}
			if b.err != nil {
				return
			}
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
			if want != nil && c != want[pgno-1] {
				return tail.ErrRestarted
			}
			next.Set(pgno, c)
			if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, b.data[j*ps:(j+1)*ps]); err != nil {
				return err
			}
		}
		encoded(len(b.pgnos) * ps)
		free <- b
	}
	return nil
}
