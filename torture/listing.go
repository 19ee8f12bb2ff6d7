package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/superfly/ltx"
)

// ltxFile is one file of `walship ltx -json`.
type ltxFile struct {
	Level   int      `json:"level"`
	MinTXID ltx.TXID `json:"min_txid"`
	MaxTXID ltx.TXID `json:"max_txid"`
	Size    int64    `json:"size"`
}

// listing returns the replica's files, from `walship ltx -json`, tried
// again up to the trial's retries.
func (s *session) listing(url string) ([]ltxFile, error) {
	if url == "" {
		url = s.cfg.replica.url
	}
	for attempt := 1; ; attempt++ {
		r, err := s.run("ltx", "ltx", "-json", url)
		if err != nil {
			return nil, err
		}
		if r.code == 0 {
			var files []ltxFile
			if err := json.Unmarshal(r.stdout, &files); err != nil {
				return nil, fmt.Errorf("walship ltx -json printed %q: %w", r.stdout, err)
			}
			return files, nil
		}
		if attempt >= s.t.retries {
			return nil, fmt.Errorf("walship ltx %s: %s", url, r.errorText())
		}
		s.t.note("ltx failed through the faults and was tried again")
		if err := s.t.sleep(100 * time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// restorePoints returns the TXIDs a restore can reach in a listing:
// every file's end from the oldest start of a chain on (a snapshot, or a
// file that starts a history: at TXID 1, or at a multiple of 2^32 after a
// takeover), sorted.
func restorePoints(files []ltxFile) []ltx.TXID {
	var oldest ltx.TXID
	for _, f := range files {
		if (f.Level == 9 || f.MinTXID%(1<<32) <= 1) && (oldest == 0 || f.MaxTXID < oldest) {
			oldest = f.MaxTXID
		}
	}
	var out []ltx.TXID
	for _, f := range files {
		if oldest != 0 && f.MaxTXID >= oldest {
			out = append(out, f.MaxTXID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
