package wal_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/internal/wal"
)

// openSQLite creates a database holding the table t (id, v) with the given
// page size, then opens it in WAL mode with automatic checkpoints off, on a
// single connection so that the log is never checkpointed on close.
func openSQLite(t *testing.T, path string, pageSize int) *sql.DB {
	t.Helper()
	// The driver runs _pragma values in lexicographic order, so journal_mode
	// would come before page_size and freeze the default: create the file
	// first.
	create, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	create.SetMaxOpenConns(1)
	for _, q := range []string{fmt.Sprintf("PRAGMA page_size = %d", pageSize), "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"} {
		if _, err := create.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := create.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)&_pragma=wal_autocheckpoint(0)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	t.Cleanup(func() { db.Close() })
	return db
}

// series is a CTE of the numbers 1 to its first argument.
const series = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?) "

func pageCount(t *testing.T, q interface {
	QueryRow(string, ...any) *sql.Row
}) uint32 {
	t.Helper()
	var n uint32
	if err := q.QueryRow("PRAGMA page_count").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// applyFrames returns the database file with the frames applied, as a reader
// of the log would rebuild it, truncated to commit pages.
func applyFrames(t *testing.T, dbPath string, walBytes []byte, s *wal.Scan) []byte {
	t.Helper()
	db, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	ps := int64(s.Header.PageSize)
	size := int64(s.Commit) * ps
	img := make([]byte, max(size, int64(len(db))))
	copy(img, db)
	for _, f := range s.Frames {
		off := int64(f.Pgno-1) * ps
		if off+ps > int64(len(img)) {
			img = append(img, make([]byte, off+ps-int64(len(img)))...)
		}
		copy(img[off:off+ps], walBytes[f.DataOffset():f.DataOffset()+ps])
	}
	return img[:size]
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestReadRealSQLite cross-checks Read against logs written by SQLite itself:
// the committed frames, applied to the database file, must give the pages
// SQLite reads, and the commit size must be SQLite's page count.
func TestReadRealSQLite(t *testing.T) {
	for _, pageSize := range []int{512, 4096, 65536} {
		t.Run(fmt.Sprint(pageSize), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			path := filepath.Join(dir, "db")
			db := openSQLite(t, path, pageSize)
			var mode string
			if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
				t.Fatalf("journal_mode %q, %v", mode, err)
			}
			var ps int
			if err := db.QueryRow("PRAGMA page_size").Scan(&ps); err != nil || ps != pageSize {
				t.Fatalf("page_size %d, %v", ps, err)
			}

			var prevEnd *wal.Position
			var prevFrames []wal.Frame
			for tx := range 8 {
				// Transactions of different sizes, including deletes that
				// leave the page count unchanged.
				stmt := series + "INSERT INTO t (v) SELECT randomblob(?) FROM c"
				args := []any{1 + tx*5, 300 + tx*100}
				if tx == 5 {
					stmt, args = "DELETE FROM t WHERE id % 3 = 0", nil
				}
				if tx == 6 {
					stmt, args = "UPDATE t SET v = randomblob(50) WHERE id % 2 = 0", nil
				}
				if _, err := db.Exec(stmt, args...); err != nil {
					t.Fatal(err)
				}
				wantPages := pageCount(t, db)
				walBytes, err := os.ReadFile(path + "-wal")
				if err != nil {
					t.Fatal(err)
				}
				r := bytes.NewReader(walBytes)
				hdr, err := wal.ReadHeader(r)
				if err != nil {
					t.Fatal(err)
				}
				if hdr.PageSize != uint32(pageSize) {
					t.Fatalf("page size %d", hdr.PageSize)
				}
				s, err := wal.Read(r, hdr, wal.Start(hdr), 0)
				if err != nil {
					t.Fatal(err)
				}
				if s.Commit != wantPages {
					t.Errorf("tx %d: Commit %d; PRAGMA page_count %d", tx, s.Commit, wantPages)
				}
				if s.End.Offset != int64(len(walBytes)) {
					t.Errorf("tx %d: End.Offset %d; wal size %d (every frame is committed)", tx, s.End.Offset, len(walBytes))
				}
				if (int64(len(walBytes))-wal.HeaderSize)%hdr.FrameSize() != 0 ||
					int64(len(s.Frames)) != (int64(len(walBytes))-wal.HeaderSize)/hdr.FrameSize() {
					t.Errorf("tx %d: %d frames in a wal of %d bytes", tx, len(s.Frames), len(walBytes))
				}
				last := s.Frames[len(s.Frames)-1]
				if last.Commit != wantPages {
					t.Errorf("tx %d: last frame commit %d", tx, last.Commit)
				}
				for _, f := range s.Frames {
					if f.Pgno == 0 || f.Pgno > f.Commit && f.Commit != 0 {
						t.Errorf("tx %d: frame %+v", tx, f)
					}
				}
				img, err := testutil.ImageOf(ctx, db)
				if err != nil {
					t.Fatal(err)
				}
				got := applyFrames(t, path, walBytes, s)
				if int(s.Commit) != img.Pages || sha(got) != img.Hash {
					t.Errorf("tx %d: database + frames = %d pages %s; SQLite reads %d pages %s", tx, s.Commit, sha(got)[:12], img.Pages, img.Hash[:12])
				}

				// Reading on from the previous end returns exactly this
				// transaction's frames.
				if prevEnd != nil {
					inc, err := wal.Read(r, hdr, *prevEnd, 0)
					if err != nil {
						t.Fatal(err)
					}
					if len(prevFrames)+len(inc.Frames) != len(s.Frames) || inc.End != s.End || inc.Commit != s.Commit {
						t.Errorf("tx %d: incremental read %d frames, End %+v; full read %d, End %+v", tx, len(inc.Frames), inc.End, len(s.Frames), s.End)
					} else {
						for i, f := range inc.Frames {
							if f != s.Frames[len(prevFrames)+i] {
								t.Errorf("tx %d: incremental frame %d %+v; full %+v", tx, i, f, s.Frames[len(prevFrames)+i])
							}
						}
					}
				}
				end := s.End
				prevEnd, prevFrames = &end, s.Frames
			}

			// SQLite's own frame count agrees (this checkpoint copies the
			// frames back but leaves the log in place).
			var busy, logFrames, ckpt int
			if err := db.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &ckpt); err != nil {
				t.Fatal(err)
			}
			if logFrames != len(prevFrames) {
				t.Errorf("SQLite counts %d frames in the log; Read returned %d", logFrames, len(prevFrames))
			}
		})
	}
}

// TestReadRealSQLiteUncommitted: frames SQLite spills to the log in the
// middle of a transaction (the page cache is too small to hold it) are not
// returned, and End stays at the last commit.
func TestReadRealSQLiteUncommitted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "db")
	db := openSQLite(t, path, 4096)
	if _, err := db.Exec(series+"INSERT INTO t (v) SELECT randomblob(1000) FROM c", 20); err != nil {
		t.Fatal(err)
	}
	committedPages := pageCount(t, db)
	before, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	committedImg, err := testutil.ImageOf(ctx, db)
	if err != nil {
		t.Fatal(err)
	}

	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{"PRAGMA cache_size = 10", "BEGIN", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 500) INSERT INTO t (v) SELECT randomblob(3000) FROM c"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	walBytes, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if len(walBytes) <= len(before) {
		t.Fatal("SQLite did not spill the open transaction to the log; the test needs a smaller cache or a larger transaction")
	}
	r := bytes.NewReader(walBytes)
	hdr, err := wal.ReadHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	s, err := wal.Read(r, hdr, wal.Start(hdr), 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.End.Offset != int64(len(before)) {
		t.Errorf("End.Offset %d; want the end of the committed log %d (wal is now %d bytes)", s.End.Offset, len(before), len(walBytes))
	}
	if s.Commit != committedPages {
		t.Errorf("Commit %d; want %d", s.Commit, committedPages)
	}
	if got := applyFrames(t, path, walBytes, s); sha(got) != committedImg.Hash {
		t.Errorf("committed frames do not rebuild the committed database")
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
}
