package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/staging"
	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/internal/wal"
	"github.com/walship/walship/storage"
)

// The interoperability tests with Litestream 0.5, through both real
// binaries: RunLitestreamTakeover (Litestream wrote the replica, walship
// restores it and takes it over) and RunLitestreamRestore (walship writes
// the replica with litestream-compatible, Litestream restores it). Both
// tools read one config file: r.YAML must hold the replica's keys in a
// form both accept (url:, endpoint:, region:, access-key-id:,
// secret-access-key:), and r.Env is given to both.

// interopConfig writes a config that replicates dbPath to r: compaction
// every two seconds, so that the replica holds a level 1, and extra lines
// (not indented) in the replica's entry.
func interopConfig(t *testing.T, cfgPath, dbPath string, r Replica, extra ...string) string {
	t.Helper()
	return writeInterop(t, cfgPath, dbPath, "", r, extra)
}

// litestreamConfig is interopConfig for Litestream. It keeps Litestream
// from checkpointing during the test: each of its checkpoints writes a
// row of its own to the database (_litestream_seq), a state the
// application's images do not hold, which the test could then not tell
// from a wrong restore. walship reads the same keys.
func litestreamConfig(t *testing.T, cfgPath, dbPath string, r Replica) string {
	t.Helper()
	return writeInterop(t, cfgPath, dbPath, "    min-checkpoint-page-count: 1000000\n    checkpoint-interval: 1h\n", r, nil)
}

func writeInterop(t *testing.T, cfgPath, dbPath, dbLines string, r Replica, extra []string) string {
	t.Helper()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "levels:\n  - interval: 2s\ndbs:\n  - path: %s\n%s    replica:\n      sync-interval: 100ms\n", dbPath, dbLines)
	for _, line := range append(strings.Split(strings.TrimSpace(r.YAML), "\n"), extra...) {
		fmt.Fprintf(&cfg, "      %s\n", line)
	}
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

// prepareForLitestream creates the tables Litestream 0.5 adds to a
// database it replicates, as it creates them, before the application's
// first image: Litestream then writes nothing to the database at start.
func prepareForLitestream(t *testing.T, dbPath string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"CREATE TABLE IF NOT EXISTS _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER)",
		"CREATE TABLE IF NOT EXISTS _litestream_lock (id INTEGER)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

// litestreamEnv is the environment of a Litestream process: the test's,
// less what would point Litestream elsewhere than r (AWS and Litestream
// variables of the machine or of the harness, such as AWS_CA_BUNDLE for a
// server this test does not use), plus r.Env.
func litestreamEnv(r Replica) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "LITESTREAM_") {
			env = append(env, kv)
		}
	}
	return append(env, r.Env...)
}

// runLitestream runs the Litestream binary to completion and returns its
// output; the test fails unless it succeeds.
func runLitestream(t *testing.T, r Replica, args ...string) string {
	t.Helper()
	cmd := exec.Command(testserver.Bin(t, "litestream"), args...)
	cmd.Env = litestreamEnv(r)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("litestream %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startLitestream starts `litestream replicate -config cfgPath`.
func startLitestream(t *testing.T, r Replica, cfgPath string) *process {
	t.Helper()
	cmd := exec.Command(testserver.Bin(t, "litestream"), "replicate", "-config", cfgPath)
	cmd.Env = litestreamEnv(r)
	log := new(testutil.SyncBuffer)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start litestream: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return &process{cmd: cmd, log: log, args: []string{"litestream", "replicate"}}
}

// images merges the images of several writers of one database.
func images(ws ...*writer) map[int64]testutil.Image {
	all := map[int64]testutil.Image{}
	for _, w := range ws {
		maps.Copy(all, w.images)
	}
	return all
}

// stopAll is stopCleanly, and fails the test if walship logged an error.
func stopAll(t *testing.T, bin string, env []string, cfgPath string, p *process, w *writer) {
	t.Helper()
	stopCleanly(t, bin, env, cfgPath, p, w)
	if log := p.output(); strings.Contains(log, "level=ERROR") {
		t.Fatalf("walship logged errors:\n%s", log)
	}
}

// levelZero returns the level-0 files of the replica, and fails unless
// they follow each other with no TXID missing or repeated, from TXID 1 or
// from a snapshot (retention deletes the files a snapshot covers). It
// returns the oldest TXID the replica restores.
func levelZero(t *testing.T, ctx context.Context, c storage.Client) ([]*ltx.FileInfo, ltx.TXID) {
	t.Helper()
	files, err := c.LTXFiles(ctx, 0)
	if err != nil {
		t.Fatalf("list level 0 of %s: %v", c, err)
	}
	if len(files) == 0 {
		t.Fatalf("%s holds no level-0 file", c)
	}
	oldest := ltx.TXID(1)
	if first := files[0].MinTXID; first > 1 {
		snaps, err := c.LTXFiles(ctx, storage.SnapshotLevel)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(snaps, func(s *ltx.FileInfo) bool { return s.MaxTXID == first-1 }) {
			t.Fatalf("%s: level 0 starts at TXID %s and no snapshot ends at %s:\n%s", c, first, first-1, listing(ctx, c))
		}
		oldest = first - 1
	}
	next := files[0].MinTXID
	for _, f := range files {
		if f.MinTXID != next {
			t.Fatalf("%s: level 0 has %s after TXID %s; want a file starting at %s:\n%s", c, storage.Describe(0, f.MinTXID, f.MaxTXID), next-1, next, listing(ctx, c))
		}
		next = f.MaxTXID + 1
	}
	return files, oldest
}

// RunLitestreamTakeover is the move from Litestream 0.5 to walship, on the
// destination of r (which must be empty): Litestream replicates under
// load and is stopped; walship restores its replica exactly, at the latest
// state and at earlier TXIDs; walship refuses to start while a Litestream
// still has the database open; then walship replicates the database to
// the same replica, with Litestream's staging directory beside it or
// (withoutStaging) after it was deleted, while the application writes.
// walship's history must go on from Litestream's last TXID with a delta
// (no gap, no snapshot needed), every walship file checksum-linked, and a
// restore at Litestream's TXIDs and walship's must be exact; `walship
// verify` must find the replica whole and in sync.
func RunLitestreamTakeover(t *testing.T, r Replica, withoutStaging bool) {
	if r.Client == nil {
		t.Fatal("e2e.RunLitestreamTakeover: Replica.Client is nil")
	}
	ctx := context.Background()
	dir := t.TempDir()
	bin := Binary(t)
	dbPath := filepath.Join(dir, "app.db")
	lsCfgPath := litestreamConfig(t, filepath.Join(dir, "litestream.yml"), dbPath, r)
	cfgPath := interopConfig(t, filepath.Join(dir, "walship.yml"), dbPath, r)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	defer func() {
		if t.Failed() {
			t.Logf("replica:\n%s", listing(ctx, r.Client))
		}
	}()

	// Litestream replicates while the application writes.
	prepareForLitestream(t, dbPath)
	w1 := startWriter(t, dbPath)
	ls := startLitestream(t, r, lsCfgPath)
	time.Sleep(8 * time.Second)
	w1.stop(t)

	// walship refuses to take the replica over while Litestream runs.
	res := runResult(bin, r.Env, "replicate", "-once", "-config", cfgPath)
	if res.err == nil || !strings.Contains(res.out, "Litestream process still replicates") || !strings.Contains(res.out, fmt.Sprintf("pid %d", ls.cmd.Process.Pid)) {
		t.Fatalf("walship replicate while Litestream runs: %v; want a refusal naming Litestream's pid %d:\n%s", res.err, ls.cmd.Process.Pid, res.out)
	}
	if _, _, err := r.Client.ReadRecord(ctx, "walship-owner.json"); err == nil {
		t.Fatal("walship wrote its owner record to the replica while refusing to start")
	}

	time.Sleep(1500 * time.Millisecond) // Litestream's last sync
	if err := ls.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := ls.cmd.Wait(); err != nil {
		t.Fatalf("litestream did not stop cleanly: %v\n%s", err, ls.output())
	}
	lsFiles, _ := levelZero(t, ctx, r.Client)
	lsLast := lsFiles[len(lsFiles)-1].MaxTXID
	t.Logf("Litestream wrote TXIDs 1 to %s for %d commits", lsLast, w1.commits())
	if lsLast < 4 {
		t.Fatalf("Litestream wrote only %d TXIDs:\n%s", lsLast, ls.output())
	}
	for _, f := range lsFiles {
		if hdr, _ := readFile(t, ctx, r.Client, f); !hdr.NoChecksum() {
			t.Fatalf("%s carries database checksums: not a file Litestream wrote", storage.Describe(0, f.MinTXID, f.MaxTXID))
		}
	}

	// walship restores Litestream's replica exactly.
	out := filepath.Join(dir, "litestream-latest.db")
	run(t, bin, r.Env, "restore", "-config", cfgPath, "-o", out, "-integrity-check", "full", dbPath)
	if got := imageOfFile(t, out); got != w1.last {
		t.Fatal("walship's restore of Litestream's latest state is not the application's last state")
	}
	lsTXIDs := []ltx.TXID{1, lsLast}
	for range 3 {
		lsTXIDs = append(lsTXIDs, lsFiles[rng.IntN(len(lsFiles))].MaxTXID)
	}
	slices.Sort(lsTXIDs)
	lsTXIDs = slices.Compact(lsTXIDs)
	for _, txid := range lsTXIDs {
		out := filepath.Join(dir, fmt.Sprintf("litestream-%s.db", txid))
		run(t, bin, r.Env, "restore", "-config", cfgPath, "-o", out, "-txid", txid.String(), dbPath)
		checkRestored(t, out, w1.images, "walship's restore of Litestream's TXID "+txid.String())
	}

	if withoutStaging {
		lsDir := filepath.Join(dir, ".app.db-litestream")
		if _, err := os.Stat(lsDir); err != nil {
			t.Fatalf("Litestream's staging directory: %v", err)
		}
		if err := os.RemoveAll(lsDir); err != nil {
			t.Fatal(err)
		}
	}

	// walship takes over while the application writes: the commits made
	// since Litestream stopped, and those made while walship runs.
	w2 := startWriter(t, dbPath)
	time.Sleep(300 * time.Millisecond)
	first := startWalship(t, bin, r.Env, "replicate", "-config", cfgPath)
	time.Sleep(2 * time.Second)
	first.kill(t)
	if log := first.output(); !strings.Contains(log, "read the state the replica's newest files end with") || strings.Contains(log, "level=ERROR") {
		t.Fatalf("walship did not read the state Litestream's files end with, or logged errors:\n%s", log)
	}
	p := startWalship(t, bin, r.Env, "replicate", "-config", cfgPath)
	time.Sleep(3 * time.Second)
	stopAll(t, bin, r.Env, cfgPath, p, w2)

	files, oldest := levelZero(t, ctx, r.Client)
	last := files[len(files)-1].MaxTXID
	if last <= lsLast {
		t.Fatalf("walship wrote nothing past Litestream's TXID %s", lsLast)
	}
	t.Logf("walship wrote TXIDs %s to %s for %d commits", lsLast+1, last, w2.commits())
	// Past Litestream's files, every file is walship's, and each applies
	// to the state the one before ends with; the first one applies to
	// the state Litestream left, as a delta: no copy of the database.
	var prev ltx.Trailer
	for _, f := range files {
		if f.MaxTXID <= lsLast {
			continue
		}
		hdr, trailer := readFile(t, ctx, r.Client, f)
		switch {
		case hdr.NoChecksum() || hdr.IsSnapshot():
			t.Fatalf("%s: walship's file carries no checksums, or is a snapshot", storage.Describe(0, f.MinTXID, f.MaxTXID))
		case f.MinTXID > lsLast+1 && hdr.PreApplyChecksum != prev.PostApplyChecksum:
			t.Fatalf("%s does not apply to the state the file before it ends with", storage.Describe(0, f.MinTXID, f.MaxTXID))
		}
		prev = trailer
	}

	// walship restores the whole history exactly: the latest state, and
	// Litestream's TXIDs and its own.
	all := images(w1, w2)
	out = filepath.Join(dir, "latest.db")
	run(t, bin, r.Env, "restore", "-config", cfgPath, "-o", out, "-integrity-check", "full", dbPath)
	if got := imageOfFile(t, out); got != w2.last {
		t.Fatal("walship's restore of the latest state is not the application's last state")
	}
	// walship's retention may have deleted Litestream's oldest files: a
	// snapshot holds their TXIDs, and the restore points before it go.
	txids := append(slices.Clone(lsTXIDs), lsLast+1)
	for range 4 {
		txids = append(txids, files[rng.IntN(len(files))].MaxTXID)
	}
	txids = slices.DeleteFunc(txids, func(txid ltx.TXID) bool { return txid < oldest })
	slices.Sort(txids)
	for _, txid := range slices.Compact(txids) {
		out := filepath.Join(dir, fmt.Sprintf("restored-%s.db", txid))
		run(t, bin, r.Env, "restore", "-config", cfgPath, "-o", out, "-txid", txid.String(), dbPath)
		checkRestored(t, out, all, "TXID "+txid.String())
	}
	if out := run(t, bin, r.Env, "verify", "-config", cfgPath, dbPath); !strings.Contains(out, "in sync") || !strings.Contains(out, "\n  whole") {
		t.Fatalf("walship verify does not find the replica whole and in sync with the database:\n%s", out)
	}
}

// RunLitestreamRestore is the way back from walship to Litestream 0.5, on
// the destination of r (which must be empty): walship replicates with
// litestream-compatible: true while the application writes (killed with
// SIGKILL and restarted once), and Litestream's restore of the latest
// state, of TXIDs (-txid) and of moments (-timestamp) must each be the
// database the application had then, page for page the one walship's own
// restore of that TXID writes. walship's verify must find the replica
// whole, and Litestream must then replicate on from walship's history.
func RunLitestreamRestore(t *testing.T, r Replica) {
	if r.Client == nil {
		t.Fatal("e2e.RunLitestreamRestore: Replica.Client is nil")
	}
	ctx := context.Background()
	dir := t.TempDir()
	bin := Binary(t)
	dbPath := filepath.Join(dir, "app.db")
	cfgPath := interopConfig(t, filepath.Join(dir, "walship.yml"), dbPath, r, "litestream-compatible: true")
	// Litestream refuses a key it does not know: its own config is the
	// same without walship's key.
	lsCfgPath := litestreamConfig(t, filepath.Join(dir, "litestream.yml"), dbPath, r)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	defer func() {
		if t.Failed() {
			t.Logf("replica:\n%s", listing(ctx, r.Client))
		}
	}()

	prepareForLitestream(t, dbPath) // for the end, when Litestream replicates on
	w := startWriter(t, dbPath)
	p := startWalship(t, bin, r.Env, "replicate", "-config", cfgPath)
	time.Sleep(2500 * time.Millisecond)
	p.kill(t)
	p = startWalship(t, bin, r.Env, "replicate", "-config", cfgPath)
	time.Sleep(3 * time.Second)
	stopAll(t, bin, r.Env, cfgPath, p, w)
	files, oldest := levelZero(t, ctx, r.Client)
	last := files[len(files)-1].MaxTXID
	t.Logf("walship wrote TXIDs %s to %s for %d commits", oldest, last, w.commits())
	for level := 0; level <= storage.MaxLevel; level++ {
		fs, err := r.Client.LTXFiles(ctx, level)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if hdr, _ := readFile(t, ctx, r.Client, f); !hdr.NoChecksum() {
				t.Fatalf("%s carries database checksums, which Litestream's restore refuses", storage.Describe(level, f.MinTXID, f.MaxTXID))
			}
		}
	}

	// walship's own restore of a TXID, the reference page for page.
	walshipAt := func(txid ltx.TXID) []byte {
		out := filepath.Join(dir, fmt.Sprintf("walship-%s.db", txid))
		if _, err := os.Stat(out); err != nil {
			run(t, bin, r.Env, "restore", "-config", cfgPath, "-o", out, "-txid", txid.String(), dbPath)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	samePages := func(out string, txid ltx.TXID, what string) {
		t.Helper()
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, walshipAt(txid)) {
			t.Fatalf("%s is not, page for page, walship's restore of TXID %s", what, txid)
		}
	}

	// The latest state.
	out := filepath.Join(dir, "litestream-latest.db")
	runLitestream(t, r, "restore", "-config", lsCfgPath, "-o", out, dbPath)
	if got := imageOfFile(t, out); got != w.last {
		t.Fatal("Litestream's restore of the latest state is not the application's last state")
	}
	samePages(out, last, "Litestream's restore of the latest state")

	// TXIDs.
	txids := []ltx.TXID{oldest, last}
	for range 4 {
		txids = append(txids, files[rng.IntN(len(files))].MaxTXID)
	}
	slices.Sort(txids)
	for _, txid := range slices.Compact(txids) {
		out := filepath.Join(dir, fmt.Sprintf("litestream-%s.db", txid))
		runLitestream(t, r, "restore", "-config", lsCfgPath, "-o", out, "-txid", txid.String(), dbPath)
		checkRestored(t, out, w.images, "Litestream's restore of TXID "+txid.String())
		samePages(out, txid, "Litestream's restore of TXID "+txid.String())
	}

	// Moments: just after a level-0 file's timestamp (Litestream takes
	// the files written strictly before the time), and before the next.
	var moments int
	for _, i := range rng.Perm(len(files) - 1) {
		f, next := files[i], files[i+1]
		at := f.CreatedAt.Add(time.Millisecond)
		if !at.Before(next.CreatedAt) || f.MaxTXID == 1 {
			continue
		}
		out := filepath.Join(dir, fmt.Sprintf("litestream-at-%d.db", i))
		runLitestream(t, r, "restore", "-config", lsCfgPath, "-o", out, "-timestamp", at.UTC().Format(time.RFC3339Nano), dbPath)
		checkRestored(t, out, w.images, "Litestream's restore of "+at.Format(time.RFC3339Nano))
		samePages(out, f.MaxTXID, fmt.Sprintf("Litestream's restore of %s (just after TXID %s)", at.Format(time.RFC3339Nano), f.MaxTXID))
		if moments++; moments == 3 {
			break
		}
	}
	if moments == 0 {
		t.Fatal("no two level-0 files were written a millisecond apart or more")
	}

	if out := run(t, bin, r.Env, "verify", "-config", cfgPath, dbPath); !strings.Contains(out, "in sync") || !strings.Contains(out, "\n  whole") {
		t.Fatalf("walship verify does not find the replica whole and in sync with the database:\n%s", out)
	}

	// Litestream replicates on from walship's history, and restores it.
	// Between stopping walship and starting Litestream the application
	// commits, and a checkpoint restarts the WAL, as SQLite's automatic
	// checkpoint does: Litestream resumes from the WAL position that the
	// replica's newest level-0 file names, and must not take the commits
	// after it, made before the restart, for replicated. walship's last
	// position is placed well inside a WAL generation, so that the restart
	// leaves the frame before it in place.
	checkpointPassive(t, dbPath)
	w0 := startWriter(t, dbPath)
	time.Sleep(300 * time.Millisecond)
	w0.stop(t)
	finish(t, bin, r.Env, "replicate", "-once", "-config", cfgPath)
	at := stagedWALPoint(t, dbPath)
	w1 := startWriter(t, dbPath)
	time.Sleep(300 * time.Millisecond)
	w1.stop(t)
	checkpointPassive(t, dbPath)
	w2 := startWriter(t, dbPath)
	for w2.commits() == 0 {
		time.Sleep(time.Millisecond)
	}
	w2.stop(t)
	if walSalt := binary.BigEndian.Uint32(readWAL(t, dbPath, 0, wal.HeaderSize)[16:]); walSalt == at.Salt1 {
		t.Fatal("the application's commit after the checkpoint did not restart the WAL")
	}
	if w1.commits() == 0 || walFrameSalt(t, dbPath, at.End-int64(walFrameSize(t, dbPath))) != at.Salt1 {
		t.Fatalf("the WAL is not what this test needs: %d commits after walship's position; the frame before it overwritten", w1.commits())
	}
	ls := startLitestream(t, r, lsCfgPath)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		files, err := r.Client.LTXFiles(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if files[len(files)-1].MaxTXID > last+1 {
			break // walship's file for w0, and Litestream's first
		}
		if time.Now().After(deadline) {
			t.Fatalf("Litestream wrote no file in a minute:\n%s", ls.output())
		}
	}
	w3 := startWriter(t, dbPath)
	time.Sleep(2 * time.Second)
	w3.stop(t)
	time.Sleep(1500 * time.Millisecond)
	if err := ls.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := ls.cmd.Wait(); err != nil {
		t.Fatalf("litestream did not stop cleanly: %v\n%s", err, ls.output())
	}
	after, _ := levelZero(t, ctx, r.Client)
	if n := after[len(after)-1].MaxTXID; n <= last+2 {
		t.Fatalf("Litestream wrote nothing past walship's TXID %s:\n%s", last, ls.output())
	}
	lsOut := filepath.Join(dir, "litestream-after.db")
	runLitestream(t, r, "restore", "-config", lsCfgPath, "-o", lsOut, dbPath)
	wsOut := filepath.Join(dir, "walship-after.db")
	run(t, bin, r.Env, "restore", "-config", cfgPath, "-o", wsOut, dbPath)
	lsOK, wsOK := imageOfFile(t, lsOut) == w3.last, imageOfFile(t, wsOut) == w3.last
	if !lsOK || !wsOK {
		t.Logf("the application's newest row: %d; Litestream's restore: %d; walship's: %d", newestRow(t, dbPath), newestRow(t, lsOut), newestRow(t, wsOut))
		t.Logf("replica:\n%s\nLitestream's log:\n%s", listing(ctx, r.Client), ls.output())
	}
	if !lsOK {
		t.Fatal("Litestream's restore after it replicated on is not the application's last state")
	}
	if !wsOK {
		t.Fatal("walship's restore after Litestream replicated on is not the application's last state")
	}
}

// walFrameSize returns the size of a frame of the database's WAL.
func walFrameSize(t *testing.T, dbPath string) int {
	t.Helper()
	return wal.FrameHeaderSize + int(binary.BigEndian.Uint32(readWAL(t, dbPath, 0, wal.HeaderSize)[8:]))
}

// walFrameSalt returns the first salt in the header of the WAL frame at
// offset off: the generation of the WAL that frame belongs to.
func walFrameSalt(t *testing.T, dbPath string, off int64) uint32 {
	t.Helper()
	return binary.BigEndian.Uint32(readWAL(t, dbPath, off, wal.FrameHeaderSize)[8:])
}

func readWAL(t *testing.T, dbPath string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(dbPath + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("read %d bytes at %d of the WAL of %s: %v", n, off, dbPath, err)
	}
	return b
}

// stagedWALPoint returns where in the WAL the newest state walship staged
// for the database was captured.
func stagedWALPoint(t *testing.T, dbPath string) staging.WALPoint {
	t.Helper()
	_, at, err := staging.New(filepath.Join(filepath.Dir(dbPath), "."+filepath.Base(dbPath)+"-walship"), slog.New(slog.DiscardHandler)).ReadPosition()
	if err != nil || at == nil {
		t.Fatalf("read walship's staged WAL position of %s: %v", dbPath, err)
	}
	return *at
}

// checkpointPassive copies the whole WAL into the database, as SQLite's
// automatic checkpoint does, so that the next commit restarts the WAL.
func checkpointPassive(t *testing.T, dbPath string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var busy, log, done int
	if err := db.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil || busy != 0 || done != log {
		t.Fatalf("checkpoint %s: %v (busy %d, %d of %d frames)", dbPath, err, busy, done, log)
	}
}
