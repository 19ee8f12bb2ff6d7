package restore_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/superfly/ltx"
	_ "modernc.org/sqlite"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
)

// noCheck restores synthetic pages, which are not a SQLite database.
var noCheck = restore.Options{IntegrityCheck: "none"}

// outDir returns an empty directory for restore output and the output path.
func outPath(t *testing.T) (dir, out string) {
	dir = t.TempDir()
	return dir, filepath.Join(dir, "restored.db")
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// checkRestored compares the restored file and result with the history at txid.
func checkRestored(t *testing.T, h *history, txid ltx.TXID, out string, res *restore.Result, files int) {
	t.Helper()
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := h.bytes(txid); !bytes.Equal(got, want) {
		t.Fatalf("restored %d bytes differ from the database after TXID %s (%d bytes, %d pages)", len(got), txid, len(want), h.commit(txid))
	}
	if res.Path != out || res.TXID != txid || res.Pages != h.commit(txid) || res.PageSize != h.pageSize ||
		res.Checksum != h.checksum(txid) || res.Files != files {
		t.Errorf("result %+v; want TXID %s, %d pages of %d bytes, checksum %s, %d files", res, txid, h.commit(txid), h.pageSize, h.checksum(txid), files)
	}
	if res.Bytes <= 0 {
		t.Errorf("result Bytes %d", res.Bytes)
	}
	checkOnlyDatabase(t, filepath.Dir(out), "a restore")
}

// checkNothingWritten checks that a failed restore left no file in dir.
func checkNothingWritten(t *testing.T, dir string, keep ...string) {
	t.Helper()
	if names := dirNames(t, dir); !slices.Equal(names, keep) {
		t.Errorf("the output directory holds %v after a failed restore; want %v", names, keep)
	}
}

// TestRestoreEveryTXID restores every TXID, the latest state and times from
// a replica with snapshots, compacted and level-0 files, and compares each
// result with the model, page for page.
func TestRestoreEveryTXID(t *testing.T) {
	h := tenTX()
	layouts := []struct {
		name  string
		files []fileRef
	}{
		{"level 0 only", l0Each(1, 10)},
		{"snapshots, level 1 and level 0", refs(l9(4), l9(7), l1(5, 8), l0Each(1, 10))},
		{"overlapping compacted file", refs(l9(5), l1(4, 8), l0Each(9, 10), l0Each(1, 3))},
		{"level 1 only", refs(l1(1, 2), l1(3, 6), l1(7, 7), l1(8, 10))},
	}
	for _, layout := range layouts {
		t.Run(layout.name, func(t *testing.T) {
			c := newReplica(t)
			writeAll(t, h, c, layout.files)
			ctx := context.Background()
			var txids []ltx.TXID
			for _, f := range layout.files {
				txids = append(txids, f.max)
			}
			slices.Sort(txids)
			txids = slices.Compact(txids)
			for _, txid := range txids {
				for _, target := range []restore.Target{{TXID: txid}, {Timestamp: h.txTime(txid)}} {
					_, out := outPath(t)
					plan, err := restore.CalcPlan(ctx, c, target)
					if err != nil {
						t.Fatalf("%s: %v", target, err)
					}
					res, err := restore.Restore(ctx, c, out, restore.Options{Target: target, IntegrityCheck: "none"})
					if err != nil {
						t.Fatalf("%s: %v", target, err)
					}
					checkRestored(t, h, txid, out, res, len(plan.Files))
					if res.Bytes != plan.Size() {
						t.Errorf("%s: result Bytes %d; plan size %d", target, res.Bytes, plan.Size())
					}
				}
			}
			_, out := outPath(t)
			res, err := restore.Restore(ctx, c, out, noCheck)
			if err != nil {
				t.Fatal(err)
			}
			plan, _ := restore.CalcPlan(ctx, c, restore.Target{})
			checkRestored(t, h, 10, out, res, len(plan.Files))
		})
	}
}

// TestRestoreGrowAndShrink: the database grows, with and without writing the
// pages it grows into, and shrinks, between files.
func TestRestoreGrowAndShrink(t *testing.T) {
	h := newHistory(512)
	h.tx(3, 1, 2, 3)        // 1
	h.tx(8, 1, 8)           // 2: grows; pages 4-7 are zeros
	h.tx(8, 5)              // 3: writes a page that was zeros
	h.tx(2, 1)              // 4: shrinks
	h.tx(6, 1)              // 5: grows without writing the new pages: 3-6 are zeros
	h.tx(6, 3)              // 6
	h.tx(12, 1, 2, 12)      // 7: grows; 7-11 zeros
	h.tx(1, 1)              // 8: shrinks to one page
	h.tx(20, 1, 5, 10, 20)  // 9: grows a lot
	h.tx(20, 20)            // 10
	h.tx(15, 1, 2, 14)      // 11: shrinks below a written page
	h.tx(30, 1, 25, 30, 16) // 12
	last := h.last()
	for pgno, b := range h.states[5].pages[2:] {
		if !bytes.Equal(b, make([]byte, 512)) {
			t.Fatalf("model: page %d after TXID 5 is not zeros", pgno+3)
		}
	}

	layouts := []struct {
		name  string
		files []fileRef
	}{
		{"level 0", l0Each(1, last)},
		{"snapshots", refs(l9(2), l9(4), l9(8), l0Each(1, last))},
		{"compacted across shrink and growth", refs(l0(1, 1), l1(2, 5), l1(6, 9), l0Each(10, last))},
		{"one compacted file after a snapshot", refs(l9(3), l1(4, last))},
	}
	for _, layout := range layouts {
		t.Run(layout.name, func(t *testing.T) {
			c := newReplica(t)
			writeAll(t, h, c, layout.files)
			ctx := context.Background()
			for _, f := range layout.files {
				_, out := outPath(t)
				res, err := restore.Restore(ctx, c, out, restore.Options{Target: restore.Target{TXID: f.max}, IntegrityCheck: "none"})
				if err != nil {
					t.Fatalf("TXID %s: %v", f.max, err)
				}
				plan, err := restore.CalcPlan(ctx, c, restore.Target{TXID: f.max})
				if err != nil {
					t.Fatal(err)
				}
				checkRestored(t, h, f.max, out, res, len(plan.Files))
			}
		})
	}
}

// TestRestoreRejects: files that do not continue the state the restore has
// built are rejected, and nothing is left in the output directory.
func TestRestoreRejects(t *testing.T) {
	h := tenTX()
	other := newHistory(1024)
	other.tx(2, 1, 2)
	other.tx(2, 2)
	tests := []struct {
		name    string
		setup   func(t *testing.T, c storage.Client)
		check   string // integrity check; "" for none
		wantErr []string
	}{
		{
			name: "pre-apply checksum does not match the state",
			setup: func(t *testing.T, c storage.Client) {
				h.write(t, c, 0, 1, 1, fileOpts{})
				h.write(t, c, 0, 2, 2, fileOpts{})
				h.write(t, c, 0, 3, 3, fileOpts{pre: h.checksum(2) ^ 1})
				writeAll(t, h, c, l0Each(4, 10))
			},
			wantErr: []string{"level 0 file 0000000000000003-0000000000000003.ltx", "pre-apply checksum", "does not match the state after TXID 0000000000000002", "no output was written"},
		},
		{
			name: "pre-apply checksum of another database",
			setup: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, refs(l9(4)))
				h.write(t, c, 0, 5, 5, fileOpts{pre: h.checksum(3)})
			},
			wantErr: []string{"pre-apply checksum", "the chain is broken"},
		},
		{
			name: "post-apply checksum does not match the pages",
			setup: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, l0Each(1, 5))
				h.write(t, c, 0, 6, 6, fileOpts{post: h.checksum(6) ^ 0x100})
			},
			wantErr: []string{"level 0 file 0000000000000006-0000000000000006.ltx", "the restored state has checksum"},
		},
		{
			name: "post-apply checksum of a compacted file",
			setup: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, refs(l9(3)))
				h.write(t, c, 1, 4, 8, fileOpts{post: h.checksum(7)})
			},
			wantErr: []string{"level 1 file 0000000000000004-0000000000000008.ltx", "the restored state has checksum"},
		},
		{
			name: "snapshot whose trailer does not match its pages",
			setup: func(t *testing.T, c storage.Client) {
				h.write(t, c, storage.SnapshotLevel, 1, 5, fileOpts{post: h.checksum(4)})
			},
			wantErr: []string{"level 9 file 0000000000000001-0000000000000005.ltx"},
		},
		{
			name: "header TXIDs differ from the name",
			setup: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, l0Each(1, 2))
				h.write(t, c, 0, 3, 3, fileOpts{nameMin: 3, nameMax: 4})
			},
			wantErr: []string{"level 0 file 0000000000000003-0000000000000004.ltx", "its header says TXIDs 0000000000000003-0000000000000003"},
		},
		{
			name: "another database's full copy at another page size",
			setup: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, l0Each(1, 1))
				other.write(t, c, 0, 2, 2, fileOpts{})
			},
			wantErr: []string{"level 0 file 0000000000000002-0000000000000002.ltx", "pre-apply checksum", "the chain is broken"},
		},
		{
			name: "corrupt file",
			setup: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, l0Each(1, 1))
				b := h.encode(t, 2, 2, fileOpts{})
				b[len(b)-40] ^= 0xff
				if _, err := c.WriteLTXFile(context.Background(), 0, 2, 2, bytes.NewReader(b), h.txTime(2)); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: []string{"level 0 file 0000000000000002-0000000000000002.ltx"},
		},
		{
			name: "truncated file",
			setup: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, l0Each(1, 1))
				b := h.encode(t, 2, 2, fileOpts{})
				if _, err := c.WriteLTXFile(context.Background(), 0, 2, 2, bytes.NewReader(b[:len(b)-20]), h.txTime(2)); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: []string{"level 0 file 0000000000000002-0000000000000002.ltx"},
		},
		{
			// Issue 12: the decoder's own message printed these in decimal.
			name: "header TXIDs out of order",
			setup: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, l0Each(1, 2))
				b := h.encode(t, 3, 3, fileOpts{})
				binary.BigEndian.PutUint64(b[16:], 5) // MinTXID 5, MaxTXID 3
				if _, err := c.WriteLTXFile(context.Background(), 0, 3, 3, bytes.NewReader(b), h.txTime(3)); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: []string{"level 0 file 0000000000000003-0000000000000003.ltx", "TXIDs are out of order: 0000000000000005-0000000000000003"},
		},
		{
			name: "synthetic pages fail the integrity check",
			setup: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, l0Each(1, 3))
			},
			check:   "quick",
			wantErr: []string{"integrity check of the restored database"},
		},
		{
			name: "unknown integrity check",
			setup: func(t *testing.T, c storage.Client) {
				writeAll(t, h, c, l0Each(1, 3))
			},
			check:   "thorough",
			wantErr: []string{`unknown integrity check "thorough"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newReplica(t)
			tt.setup(t, c)
			dir, out := outPath(t)
			opts := noCheck
			if tt.check != "" {
				opts.IntegrityCheck = tt.check
			}
			res, err := restore.Restore(context.Background(), c, out, opts)
			if err == nil {
				t.Fatalf("restore succeeded: %+v", res)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			checkNothingWritten(t, dir)
		})
	}
}

// TestRestoreBeforeBadFile: a restore to a TXID before a bad file succeeds.
func TestRestoreBeforeBadFile(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, l0Each(1, 2))
	h.write(t, c, 0, 3, 3, fileOpts{pre: h.checksum(2) ^ 1})
	_, out := outPath(t)
	res, err := restore.Restore(context.Background(), c, out, restore.Options{Target: restore.Target{TXID: 2}, IntegrityCheck: "none"})
	if err != nil {
		t.Fatal(err)
	}
	checkRestored(t, h, 2, out, res, 2)
}

// TestRestoreExistingOutput: an existing database (or its WAL) at the output
// path is replaced only with Force, and then its stale WAL and shared-memory
// files are removed.
func TestRestoreExistingOutput(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, refs(l9(4), l0Each(5, 10)))
	ctx := context.Background()
	old := []byte("an existing database that must survive")

	for _, existing := range [][]string{{""}, {"-wal"}, {"", "-wal", "-shm"}, {"-journal"}, {"", "-journal"}} {
		t.Run(strings.Join(existing, ","), func(t *testing.T) {
			dir, out := outPath(t)
			for _, suffix := range existing {
				if err := os.WriteFile(out+suffix, old, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			before := dirNames(t, dir)
			_, err := restore.Restore(ctx, c, out, noCheck)
			if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "-force") {
				t.Fatalf("Restore over an existing output without Force: %v", err)
			}
			plan, err := restore.CalcPlan(ctx, c, restore.Target{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := restore.Apply(ctx, c, plan, out, noCheck); err == nil || !strings.Contains(err.Error(), "already exists") {
				t.Fatalf("Apply over an existing output without Force: %v", err)
			}
			checkNothingWritten(t, dir, before...)
			for _, suffix := range existing {
				if b, err := os.ReadFile(out + suffix); err != nil || !bytes.Equal(b, old) {
					t.Fatalf("%s changed: %q, %v", out+suffix, b, err)
				}
			}

			opts := noCheck
			opts.Force = true
			res, err := restore.Restore(ctx, c, out, opts)
			if err != nil {
				t.Fatal(err)
			}
			checkRestored(t, h, 10, out, res, 7)
			checkNothingWritten(t, dir, "restored.db")
		})
	}
}

// TestRestoreForceKeepsOldOnFailure: a forced restore that fails leaves the
// existing database and its WAL as they were.
func TestRestoreForceKeepsOldOnFailure(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, l0Each(1, 2))
	h.write(t, c, 0, 3, 3, fileOpts{post: h.checksum(3) ^ 1})
	dir, out := outPath(t)
	old := []byte("old")
	for _, p := range []string{out, out + "-wal"} {
		if err := os.WriteFile(p, old, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := restore.Restore(context.Background(), c, out, restore.Options{Force: true, IntegrityCheck: "none"}); err == nil {
		t.Fatal("restore succeeded")
	}
	checkNothingWritten(t, dir, "restored.db", "restored.db-wal")
	for _, p := range []string{out, out + "-wal"} {
		if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, old) {
			t.Errorf("%s changed: %q, %v", p, b, err)
		}
	}
}

// TestApplyStaleTemp: a temporary file left by an interrupted restore is
// replaced.
func TestApplyStaleTemp(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, l0Each(1, 10))
	dir, out := outPath(t)
	if err := os.WriteFile(out+".tmp", bytes.Repeat([]byte{0xee}, 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	plan, err := restore.CalcPlan(ctx, c, restore.Target{TXID: 8})
	if err != nil {
		t.Fatal(err)
	}
	res, err := restore.Apply(ctx, c, plan, out, noCheck)
	if err != nil {
		t.Fatal(err)
	}
	checkRestored(t, h, 8, out, res, 8)
	checkNothingWritten(t, dir, "restored.db")
}

func TestRestoreCanceled(t *testing.T) {
	h := tenTX()
	c := newReplica(t)
	writeAll(t, h, c, l0Each(1, 10))
	ctx := context.Background()
	plan, err := restore.CalcPlan(ctx, c, restore.Target{})
	if err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	dir, out := outPath(t)
	if _, err := restore.Apply(canceled, c, plan, out, noCheck); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v; want context.Canceled", err)
	}
	checkNothingWritten(t, dir)
}

// TestRestoreEmptyReplica: Restore passes on ErrNoFiles and writes nothing.
func TestRestoreEmptyReplica(t *testing.T) {
	dir, out := outPath(t)
	if _, err := restore.Restore(context.Background(), newReplica(t), out, noCheck); !errors.Is(err, restore.ErrNoFiles) {
		t.Fatalf("error %v; want ErrNoFiles", err)
	}
	checkNothingWritten(t, dir)
}

// realHistory builds a history from a real SQLite database with 512-byte
// pages (growing, and shrinking with VACUUM), and returns the number of rows of
// table t after each TXID.
func realHistory(t *testing.T) (*history, map[ltx.TXID]int) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src.db")
	db, err := sql.Open("sqlite", "file:"+src)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	defer db.Close()
	h := newHistory(512)
	rows := map[ltx.TXID]int{}
	step := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if len(b)%512 != 0 {
			t.Fatalf("database of %d bytes", len(b))
		}
		txid := h.txImage(b)
		var n int
		if err := db.QueryRow("SELECT count(*) FROM sqlite_master WHERE name = 't'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
				t.Fatal(err)
			}
		}
		rows[txid] = n
	}
	const ins = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?) INSERT INTO t (v) SELECT randomblob(?) FROM c"
	if _, err := db.Exec("PRAGMA page_size = 512"); err != nil {
		t.Fatal(err)
	}
	step("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")  // 1
	step(ins, 20, 100)                                       // 2
	step(ins, 50, 400)                                       // 3: grows
	step("UPDATE t SET v = randomblob(30) WHERE id % 4 = 0") // 4
	step("DELETE FROM t WHERE id > 10")                      // 5: free pages
	step("VACUUM")                                           // 6: shrinks
	step(ins, 5, 2000)                                       // 7: overflow pages
	step("CREATE INDEX i ON t (v)")                          // 8
	step("DELETE FROM t WHERE id % 2 = 1")                   // 9
	step("VACUUM")                                           // 10
	if h.commit(6) >= h.commit(5) || h.commit(10) >= h.commit(9) {
		t.Fatalf("VACUUM did not shrink the database: %d -> %d, %d -> %d pages", h.commit(5), h.commit(6), h.commit(9), h.commit(10))
	}

	return h, rows
}

// TestRestoreRealSQLite builds the history from a real SQLite database with
// 512-byte pages (growing, and shrinking with VACUUM), and restores it with
// SQLite's integrity checks on.
func TestRestoreRealSQLite(t *testing.T) {
	ctx := context.Background()
	h, rows := realHistory(t)
	last := h.last()

	c := newReplica(t)
	writeAll(t, h, c, refs(l9(3), l1(4, 7), l0Each(1, last)))
	for txid := ltx.TXID(1); txid <= last; txid++ {
		for _, check := range []string{"quick", "full"} {
			_, out := outPath(t)
			res, err := restore.Restore(ctx, c, out, restore.Options{Target: restore.Target{TXID: txid}, IntegrityCheck: check})
			if err != nil {
				t.Fatalf("TXID %s, %s check: %v", txid, check, err)
			}
			plan, err := restore.CalcPlan(ctx, c, restore.Target{TXID: txid})
			if err != nil {
				t.Fatal(err)
			}
			checkRestored(t, h, txid, out, res, len(plan.Files))
			if got := countRows(t, out); got != rows[txid] {
				t.Errorf("TXID %s: %d rows; want %d", txid, got, rows[txid])
			}
		}
	}

	// A chain whose checksums are all right but whose database is corrupt
	// fails SQLite's check, and nothing is written.
	b := h.bytes(last)
	for pgno := 2; pgno <= len(b)/512; pgno++ {
		if p := b[(pgno-1)*512:]; p[0] == 0x0d { // a table leaf page
			for i := 8; i < 512; i++ {
				p[i] = byte(i)
			}
			break
		}
	}
	bad := h.txImage(b)
	h.write(t, c, 0, bad, bad, fileOpts{})
	for _, check := range []string{"", "quick", "full"} {
		dir, out := outPath(t)
		if _, err := restore.Restore(ctx, c, out, restore.Options{IntegrityCheck: check}); err == nil ||
			!strings.Contains(err.Error(), "integrity check") {
			t.Errorf("%q check of a corrupt database: %v", check, err)
		}
		checkNothingWritten(t, dir)
	}
	_, out := outPath(t)
	res, err := restore.Restore(ctx, c, out, noCheck)
	if err != nil {
		t.Fatal(err)
	}
	checkRestored(t, h, bad, out, res, 6) // 1-3, 4-7, 8, 9, 10, 11
}

func countRows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(fmt.Errorf("count rows of %s: %w", path, err))
	}
	return n
}

// TestRestoreOutputPathSpecialCharacters: the output path may hold any
// character a file name can.
//
// BUG: the integrity check opens "file:"+path+"?mode=ro&immutable=1" as a
// SQLite URI without escaping the path. With '#' in the path, SQLite opens
// (and creates, read-write, since mode=ro is in the discarded fragment) the
// file named by the part before '#': the check runs on that new empty
// database and passes, so a corrupt restore is accepted and a stray file is
// left next to the output. With '?' or '%' the check fails to open the file
// and a good restore is refused ("unable to open database file").
func TestRestoreOutputPathSpecialCharacters(t *testing.T) {
	ctx := context.Background()
	h, _ := realHistory(t)
	good := newReplica(t)
	writeAll(t, h, good, l0Each(1, h.last()))
	junk := tenTX()
	bad := newReplica(t)
	writeAll(t, junk, bad, l0Each(1, 3))
	// Subtests' own temporary directories would carry the special
	// characters in their names too: keep them in plain directories.
	root := t.TempDir()
	for i, tc := range []struct{ label, name string }{
		{"space", "with space.db"},
		{"hash", "hash#1.db"},
		{"question mark", "what?.db"},
		{"percent", "pct%41.db"},
		{"ampersand", "amp&mode=rw.db"},
	} {
		name := tc.name
		t.Run(tc.label, func(t *testing.T) {
			mkdir := func(s string) string {
				d := filepath.Join(root, fmt.Sprint(i, s))
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
				return d
			}
			dir := mkdir("good")
			out := filepath.Join(dir, name)
			res, err := restore.Restore(ctx, good, out, restore.Options{})
			if err != nil {
				t.Errorf("restore of a good database to %q: %v", name, err)
			} else {
				checkRestored(t, h, h.last(), out, res, int(h.last()))
			}
			if names := dirNames(t, dir); err == nil && !slices.Equal(names, []string{name}) {
				t.Errorf("the output directory holds %q; want only %q", names, name)
			}

			dir = mkdir("bad")
			out = filepath.Join(dir, name)
			if _, err := restore.Restore(ctx, bad, out, restore.Options{IntegrityCheck: "quick"}); err == nil {
				t.Errorf("restore of pages that are not a database to %q passed the integrity check", name)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("a failed restore to %q left %q", name, names)
			}
		})
	}
}
