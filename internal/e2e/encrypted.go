package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/crypt"
	"github.com/walship/walship/storage/file"
)

// RunEncrypted is the end-to-end test of a replica encrypted on the client
// (package storage/crypt), on the destination of r, which must be empty;
// r.Client reads it as stored, without a key. Through the walship binary
// and a config whose replica has encryption-key-path (a key written by
// walship keygen), an application writes rows that start with a marker
// string while walship replicates; walship is killed with SIGKILL once,
// restarted and stopped. Then:
//
//   - the replica holds one chain of TXIDs; restores of the latest state,
//     of random TXIDs and of a time are exactly the application's database
//     then; walship ltx lists the replica and walship verify finds it whole
//     and in sync with the database;
//   - every object of the replica, read as stored, starts with crypt.Magic,
//     and none holds the marker, which the restored database does;
//   - a restore without the key, with another key, or with a key file others
//     can read fails, saying so, and leaves no output;
//   - so does a restore that needs the newest snapshot (no other file ends
//     at its TXID) once a byte in its middle is flipped, once it is cut at
//     a chunk boundary, and once it is swapped with the snapshot before it;
//     and a restore of a TXID whose level-0 file was replaced with the file
//     of the same name from another replica encrypted with the same key;
//     each names the object;
//   - with the objects put back, verify finds the replica whole again.
func RunEncrypted(t *testing.T, r Replica) {
	if r.Client == nil {
		t.Fatal("e2e.RunEncrypted: Replica.Client is nil")
	}
	ctx := context.Background()
	dir := t.TempDir()
	e := &encrypted{r: r, bin: Binary(t), dir: dir, dbPath: filepath.Join(dir, "app.db"), keyPath: filepath.Join(dir, "replica.key")}
	e.key = keygen(t, e.bin, e.keyPath)
	sealed := r
	sealed.YAML = strings.TrimSpace(r.YAML) + "\nencryption-key-path: " + e.keyPath
	// A snapshot every second: the newest is of TXIDs the application
	// wrote, several chunks long.
	e.cfgPath = writeConfigWith(t, filepath.Join(dir, "walship.yml"), fastLevels+"snapshot:\n  interval: 1s\n", e.dbPath, sealed)
	defer func() {
		if t.Failed() {
			t.Logf("replica, as stored:\n%s", listing(ctx, r.Client))
		}
	}()

	marker := newMarker()
	e.w = startMarkedWriter(t, e.dbPath, marker)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	opened := crypt.Wrap(r.Client, crypt.Keys{Current: e.key})
	replicateKilled(t, e.bin, r.Env, e.cfgPath, opened, e.w, 1, rng)
	txids := checkChain(t, ctx, opened)
	t.Logf("the replica holds TXIDs 1 to %s in one chain", txids[len(txids)-1])

	latest := checkRestores(t, e.bin, r.Env, e.cfgPath, e.dbPath, dir, e.w, txids, rng)
	if b, err := os.ReadFile(latest); err != nil || !bytes.Contains(b, []byte(marker)) {
		t.Fatalf("the restored database %s does not hold the marker %s the application wrote (%v): the search of the replica for it would prove nothing", latest, marker, err)
	}
	e.checkRestoreAtTime(t, ctx, rng)

	s := scanObjects(t, ctx, r.Client, marker)
	if len(s.plain) > 0 || len(s.marked) > 0 || s.objects == 0 {
		t.Fatalf("of the %d objects of the replica, %d are not encrypted (%s) and %d hold the marker %s in clear (%s)",
			s.objects, len(s.plain), strings.Join(s.plain, ", "), len(s.marked), marker, strings.Join(s.marked, ", "))
	}
	t.Logf("none of the %d objects of the replica (%d bytes) holds the marker, and each starts with %q", s.objects, s.bytes, crypt.Magic)

	e.checkKeyErrors(t)
	e.checkTampering(t, ctx)
	e.checkCopiedIn(t, ctx)
	// The objects put back, the replica is whole again.
	if out := run(t, e.bin, r.Env, "verify", "-config", e.cfgPath, e.dbPath); !strings.Contains(out, "in sync") {
		t.Fatalf("walship verify does not find the replica whole again once its objects were put back:\n%s", out)
	}
}

// encrypted is the state of RunEncrypted.
type encrypted struct {
	r       Replica
	bin     string
	dir     string
	dbPath  string
	cfgPath string // the encrypted replica's config
	keyPath string
	key     crypt.Key
	w       *writer
}

// checkRestoreAtTime restores the state at the time a level-0 file picked
// at random was written, and fails unless it is exactly the application's
// database at the newest TXID of a file written by then.
func (e *encrypted) checkRestoreAtTime(t *testing.T, ctx context.Context, rng *rand.Rand) {
	t.Helper()
	files := allFiles(t, ctx, e.r.Client)
	l0 := slices.DeleteFunc(slices.Clone(files), func(f *ltx.FileInfo) bool { return f.Level != 0 })
	at := l0[len(l0)/4+rng.IntN(max(1, len(l0)/2))].CreatedAt
	var want ltx.TXID
	for _, f := range files {
		if !f.CreatedAt.After(at) {
			want = max(want, f.MaxTXID)
		}
	}
	out := filepath.Join(e.dir, "restored-at-time.db")
	stamp := at.UTC().Format(time.RFC3339Nano)
	if got := run(t, e.bin, e.r.Env, "restore", "-config", e.cfgPath, "-o", out, "-timestamp", stamp, e.dbPath); !strings.Contains(got, "restored TXID "+want.String()) {
		t.Fatalf("restore -timestamp %s: want TXID %s, the newest of a file written by then:\n%s", stamp, want, got)
	}
	checkRestored(t, out, e.w.images, "time "+stamp)
}

// checkKeyErrors fails the test unless a restore fails, leaving no output,
// when it is given no key (a config without the key), another key (the
// flag, over the config's) or a key file others can read.
func (e *encrypted) checkKeyErrors(t *testing.T) {
	t.Helper()
	noKey := writeConfigWith(t, filepath.Join(e.dir, "walship-nokey.yml"), "", e.dbPath, e.r)
	e.restoreFails(t, "a restore given no key", []string{"is encrypted with key " + e.key.ID(), "given no key"}, "-config", noKey, e.dbPath)

	otherPath := filepath.Join(e.dir, "other.key")
	other := keygen(t, e.bin, otherPath)
	e.restoreFails(t, "a restore given another key", []string{"written with another encryption key " + e.key.ID(), "not with " + other.ID()},
		"-config", e.cfgPath, "-encryption-key-path", otherPath, e.dbPath)

	if err := os.Chmod(e.keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	e.restoreFails(t, "a restore with a key file others can read", []string{"can be read by others", "chmod 600 " + e.keyPath}, "-config", e.cfgPath, e.dbPath)
	if err := os.Chmod(e.keyPath, 0o600); err != nil {
		t.Fatal(err)
	}
}

// chunkSize is the plaintext of one chunk of an encrypted object
// (storage/crypt/format.go).
const chunkSize = 64 << 10

// checkTampering alters the newest snapshot, S, three ways through the
// store, each undone before the next, and fails the test unless each
// makes a restore of TXID S fail, naming it, with no output. The files of
// the lower levels that end at S are set aside meanwhile (and put back),
// so that no chain of other files reaches S: a restore of S then needs S,
// which it first restores exactly, untouched.
func (e *encrypted) checkTampering(t *testing.T, ctx context.Context) {
	t.Helper()
	c := e.r.Client
	snaps := levelFiles(t, ctx, c, storage.SnapshotLevel)
	if len(snaps) < 2 || snaps[len(snaps)-1].MaxTXID <= 1 {
		t.Fatalf("the replica holds %d snapshots, none of TXIDs the application wrote; the test needs one besides the first (snapshot interval 1s)", len(snaps))
	}
	snap, prev := snaps[len(snaps)-1], snaps[len(snaps)-2]
	name := storage.Describe(snap.Level, snap.MinTXID, snap.MaxTXID)
	orig, prevOrig := readObject(t, ctx, c, snap), readObject(t, ctx, c, prev)
	plain, ok := crypt.PlainSize(int64(len(orig)))
	chunks := (plain + chunkSize - 1) / chunkSize
	if !ok || chunks < 3 {
		t.Fatalf("%s is %d bytes stored, %d chunks: the test needs at least 3, for a byte in a middle chunk and a cut at a chunk boundary", name, len(orig), chunks)
	}
	cut := crypt.SealedSize((chunks - 1) * chunkSize)
	if n, ok := crypt.PlainSize(cut); !ok || n != (chunks-1)*chunkSize {
		t.Fatalf("%s cut to %d bytes is not cut at the end of its chunk %d: chunkSize is not crypt's", name, cut, chunks-2)
	}

	var aside []*ltx.FileInfo
	for level := range storage.SnapshotLevel {
		for _, f := range levelFiles(t, ctx, c, level) {
			if f.MaxTXID == snap.MaxTXID {
				aside = append(aside, f)
			}
		}
	}
	asideData := make([][]byte, len(aside))
	for i, f := range aside {
		asideData[i] = readObject(t, ctx, c, f)
	}
	if err := c.DeleteLTXFiles(ctx, aside); err != nil {
		t.Fatalf("set aside the files that end at TXID %s: %v", snap.MaxTXID, err)
	}
	txid := snap.MaxTXID.String()
	out := filepath.Join(e.dir, "restored-snapshot.db")
	run(t, e.bin, e.r.Env, "restore", "-config", e.cfgPath, "-o", out, "-txid", txid, e.dbPath)
	checkRestored(t, out, e.w.images, name+", the only file that ends at TXID "+txid)

	flipped := slices.Clone(orig)
	flipped[len(flipped)/2] ^= 0x10
	originals := map[*ltx.FileInfo][]byte{snap: orig, prev: prevOrig}
	for _, tc := range []struct {
		what string
		put  map[*ltx.FileInfo][]byte
	}{
		{"a byte flipped in its middle", map[*ltx.FileInfo][]byte{snap: flipped}},
		{fmt.Sprintf("its last chunk dropped (%d of its %d bytes left)", cut, len(orig)), map[*ltx.FileInfo][]byte{snap: orig[:cut]}},
		{"its bytes swapped with those of " + storage.Describe(prev.Level, prev.MinTXID, prev.MaxTXID), map[*ltx.FileInfo][]byte{snap: prevOrig, prev: orig}},
	} {
		for f, b := range tc.put {
			putObject(t, ctx, c, f, b)
		}
		e.restoreFails(t, "a restore of "+name+" with "+tc.what, []string{name, "altered, cut short or moved from another name"},
			"-config", e.cfgPath, "-txid", txid, e.dbPath)
		for f := range tc.put {
			putObject(t, ctx, c, f, originals[f])
		}
	}
	for i, f := range aside {
		putObject(t, ctx, c, f, asideData[i])
	}
}

// checkCopiedIn replaces a level-0 file of the replica with the file of the
// same name from another replica encrypted with the same key (it
// authenticates: the two differ only in what they hold), and fails the
// test unless a restore of its TXID, which no other file ends at, fails
// naming it, with no output. The file is put back.
func (e *encrypted) checkCopiedIn(t *testing.T, ctx context.Context) {
	t.Helper()
	c := e.r.Client
	other := e.otherReplica(t)
	ends := map[ltx.TXID][]*ltx.FileInfo{}
	for _, f := range allFiles(t, ctx, c) {
		ends[f.MaxTXID] = append(ends[f.MaxTXID], f)
	}
	var own, theirs *ltx.FileInfo
	for _, f := range slices.Backward(levelFiles(t, ctx, other, 0)) {
		if fs := ends[f.MaxTXID]; f.MinTXID == f.MaxTXID && len(fs) == 1 && fs[0].Level == 0 && fs[0].MinTXID == f.MinTXID {
			own, theirs = fs[0], f
			break
		}
	}
	if own == nil {
		t.Fatalf("no level-0 file of the other replica has the name of one of this replica's that alone ends at its TXID:\n%s", listing(ctx, other))
	}
	name := storage.Describe(own.Level, own.MinTXID, own.MaxTXID)
	txid := own.MaxTXID.String()
	out := filepath.Join(e.dir, "restored-before-copy.db")
	run(t, e.bin, e.r.Env, "restore", "-config", e.cfgPath, "-o", out, "-txid", txid, e.dbPath)
	checkRestored(t, out, e.w.images, "TXID "+txid+" before the copy")

	orig := readObject(t, ctx, c, own)
	putObject(t, ctx, c, own, readObject(t, ctx, other, theirs))
	e.restoreFails(t, "a restore of TXID "+txid+" with "+name+" copied in from another replica", []string{name, "pre-apply checksum"},
		"-config", e.cfgPath, "-txid", txid, e.dbPath)
	putObject(t, ctx, c, own, orig)
}

// otherReplica replicates a second database, whose rows start with a
// marker of their own, to a new directory with the replica's key, in six
// one-shot runs of walship replicate DB_PATH REPLICA_URL
// -encryption-key-path (TXIDs 1 to 6), and returns the directory, read as
// stored. An encrypted object is the same bytes on every backend: one
// copied from there is one copied from another replica on r's.
func (e *encrypted) otherReplica(t *testing.T) storage.Client {
	t.Helper()
	dbPath, dir := filepath.Join(e.dir, "other.db"), filepath.Join(e.dir, "other-replica")
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	marker := newMarker()
	for i := range 6 {
		if _, err := db.Exec("INSERT INTO t (id, v) VALUES (?, ? || randomblob(2000))", i+1, marker); err != nil {
			t.Fatal(err)
		}
		run(t, e.bin, nil, "replicate", "-once", "-encryption-key-path", e.keyPath, dbPath, "file://"+dir)
	}
	return file.New(dir)
}

// restoreFails runs walship restore with args into an empty directory, and
// fails the test unless walship exits with an error that says each of
// want and leaves the directory empty: no database, no temporary file.
func (e *encrypted) restoreFails(t *testing.T, what string, want []string, args ...string) {
	t.Helper()
	outDir := t.TempDir()
	res := runResult(e.bin, e.r.Env, append([]string{"restore", "-o", filepath.Join(outDir, "restored.db")}, args...)...)
	if code := exitCode(res.err); code <= 0 {
		t.Fatalf("%s: walship restore exited %d (%v); want a failure:\n%s", what, code, res.err, res.out)
	}
	for _, s := range want {
		if !strings.Contains(res.out, s) {
			t.Fatalf("%s fails without saying %q:\n%s", what, s, res.out)
		}
	}
	left, err := os.ReadDir(outDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		var names []string
		for _, l := range left {
			names = append(names, l.Name())
		}
		t.Fatalf("%s fails but leaves %s in the output directory", what, strings.Join(names, ", "))
	}
	t.Logf("%s fails: %s", what, strings.TrimSpace(res.out))
}

// keygen writes a new key file at path with walship keygen, and fails the
// test unless walship names the key it wrote, and the file holds it and is
// readable by its owner alone.
func keygen(t *testing.T, bin, path string) crypt.Key {
	t.Helper()
	out := run(t, bin, nil, "keygen", path)
	k, err := crypt.ReadKeyFile(path)
	if err != nil {
		t.Fatalf("walship keygen %s: %v", path, err)
	}
	if !strings.Contains(out, "wrote key "+k.ID()) {
		t.Fatalf("walship keygen does not name the key %s it wrote:\n%s", k.ID(), out)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Fatalf("walship keygen wrote %s with mode %#o; want 0600", path, fi.Mode().Perm())
	}
	return k
}

// newMarker returns a string no replica holds by chance.
func newMarker() string { return fmt.Sprintf("WALSHIP-MARKER-%016x", rand.Uint64()) }

// objectScan is what scanObjects found in a replica's objects.
type objectScan struct {
	objects int
	bytes   int64
	plain   []string // the objects that do not start with crypt.Magic
	marked  []string // the objects that hold the marker
}

// scanObjects reads every object of c whole, as c returns it, and reports
// which are not encrypted and which hold marker.
func scanObjects(t *testing.T, ctx context.Context, c storage.Client, marker string) objectScan {
	t.Helper()
	var s objectScan
	for _, f := range allFiles(t, ctx, c) {
		b := readObject(t, ctx, c, f)
		name := storage.Describe(f.Level, f.MinTXID, f.MaxTXID)
		s.objects++
		s.bytes += int64(len(b))
		if !bytes.HasPrefix(b, []byte(crypt.Magic)) {
			s.plain = append(s.plain, name)
		}
		if bytes.Contains(b, []byte(marker)) {
			s.marked = append(s.marked, name)
		}
	}
	return s
}

// allFiles lists every level of c.
func allFiles(t *testing.T, ctx context.Context, c storage.Client) []*ltx.FileInfo {
	t.Helper()
	var all []*ltx.FileInfo
	for level := 0; level <= storage.MaxLevel; level++ {
		all = append(all, levelFiles(t, ctx, c, level)...)
	}
	return all
}

// levelFiles lists one level of c.
func levelFiles(t *testing.T, ctx context.Context, c storage.Client, level int) []*ltx.FileInfo {
	t.Helper()
	files, err := c.LTXFiles(ctx, level)
	if err != nil {
		t.Fatalf("list level %d of %s: %v", level, c, err)
	}
	return files
}

// readObject reads file f of c whole.
func readObject(t *testing.T, ctx context.Context, c storage.Client, f *ltx.FileInfo) []byte {
	t.Helper()
	rc, err := c.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, 0, 0)
	if err != nil {
		t.Fatalf("open %s of %s: %v", storage.Describe(f.Level, f.MinTXID, f.MaxTXID), c, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s of %s: %v", storage.Describe(f.Level, f.MinTXID, f.MaxTXID), c, err)
	}
	return b
}

// putObject stores b as file f of c, with f's creation time.
func putObject(t *testing.T, ctx context.Context, c storage.Client, f *ltx.FileInfo, b []byte) {
	t.Helper()
	if _, err := c.WriteLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID, bytes.NewReader(b), f.CreatedAt); err != nil {
		t.Fatalf("write %s of %s: %v", storage.Describe(f.Level, f.MinTXID, f.MaxTXID), c, err)
	}
}
