package main

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/monitor"
	"github.com/walship/walship/internal/testutil"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/verify"
)

// verifyOutput is what verify -json prints, as a script reads it.
type verifyOutput struct {
	Whole    bool
	Problems int
	Replicas []struct {
		DB      string
		Name    string
		Replica string
		Error   string
		Report  *verify.Report
	}
	Databases []struct {
		Path  string
		Error string
		Live  *verify.Live
	}
}

// replicated is a database replicated by `replicate -once`, once per
// transaction, to a directory replica: TXIDs 1 to 4 (the snapshot at 1,
// compaction levels 1 to 3 merged at the first run after it).
type replicated struct {
	app     *appDB
	replica string
}

func newReplicated(t *testing.T) *replicated { return newReplicatedRows(t, 5) }

// newReplicatedRows is newReplicated with rows rows in the first
// transaction: databases of different rows are different databases.
func newReplicatedRows(t *testing.T, rows int) *replicated {
	t.Helper()
	noConfig(t)
	dir := t.TempDir()
	r := &replicated{app: newAppDB(t, filepath.Join(dir, "app.db"), rows), replica: filepath.Join(dir, "replica")}
	mustRun(t, "replicate", "-once", r.app.path, "file://"+r.replica)
	for range 3 {
		r.app.insert(5)
		mustRun(t, "replicate", "-once", r.app.path, "file://"+r.replica)
	}
	return r
}

// file returns the path of the replica's file at level that ends at txid.
func (r *replicated) file(t *testing.T, level int, txid ltx.TXID) string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(r.replica, "ltx", strconv.Itoa(level), "*-"+txid.String()+".ltx"))
	if len(paths) != 1 {
		t.Fatalf("level %d holds %d files ending at %s", level, len(paths), txid)
	}
	return paths[0]
}

// runVerifyJSON runs verify -json and decodes its output.
func runVerifyJSON(t *testing.T, wantCode int, args ...string) verifyOutput {
	t.Helper()
	code, stdout, stderr := runCLI(t, append([]string{"verify", "-json"}, args...)...)
	if code != wantCode {
		t.Fatalf("verify -json %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, wantCode, stdout, stderr)
	}
	var out verifyOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("verify -json printed %q: %v", stdout, err)
	}
	return out
}

func TestVerifyWhole(t *testing.T) {
	r := newReplicated(t)

	stdout := mustRun(t, "verify", r.replica)
	for _, want := range []string{"replica file://" + r.replica, "read 7 files", "level 9: 1 file", "checksums: 7 of 7 sound files", "newest: TXID 0000000000000004", "oldest restorable: TXID 0000000000000001", "restore points: 4, 4 restorable", "whole", "verify: 1 replica whole"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("verify printed no %q:\n%s", want, stdout)
		}
	}
	if alias := mustRun(t, "validate", "file://"+r.replica); !strings.Contains(alias, "validate: 1 replica whole") {
		t.Errorf("validate printed:\n%s", alias)
	}

	out := runVerifyJSON(t, 0, "-parallelism", "1", r.app.path, "file://"+r.replica)
	rep := out.Replicas[0].Report
	if !out.Whole || out.Problems != 0 || len(out.Replicas) != 1 || rep == nil || rep.Files != 7 || rep.RestorePoints != 4 || len(rep.Problems) != 0 {
		t.Fatalf("verify -json: %+v, report %+v", out, rep)
	}
	if rep.Database == nil || rep.Database.Status != verify.StatusInSync || len(out.Databases) != 1 || out.Databases[0].Live.Staged.TXID != 4 {
		t.Fatalf("the database comparison: %+v; %+v", rep.Database, out.Databases)
	}

	code, _, stderr := runCLI(t, "verify", "-h")
	for _, want := range []string{"Exit status: 0 when every replica is whole; 1 when a problem was found", "3 when a replica or database could not", "-replica", "-json", "-parallelism"} {
		if code != 0 || !strings.Contains(strings.Join(strings.Fields(stderr), " "), want) {
			t.Errorf("verify -h (exit %d) does not say %q:\n%s", code, want, stderr)
		}
	}
}

// TestVerifyConfig: every database and replica of the config, or one by
// name; the replicas of one database are compared with the database and
// with each other.
func TestVerifyConfig(t *testing.T) {
	dir := t.TempDir()
	app := newAppDB(t, filepath.Join(dir, "app.db"), 5)
	cfg := filepath.Join(dir, "walship.yml")
	os.WriteFile(cfg, []byte("dbs:\n  - path: "+app.path+"\n    replicas:\n      - name: near\n        path: "+filepath.Join(dir, "near")+
		"\n      - name: far\n        path: "+filepath.Join(dir, "far")+"\n"), 0o644)
	t.Setenv("WALSHIP_CONFIG", cfg)
	mustRun(t, "replicate", "-once")
	app.insert(3)
	mustRun(t, "replicate", "-once")

	for _, args := range [][]string{nil, {app.path}} {
		out := runVerifyJSON(t, 0, args...)
		if len(out.Replicas) != 2 || out.Replicas[0].Name != "near" || out.Replicas[1].Name != "far" || !out.Whole {
			t.Fatalf("verify %v: %+v", args, out)
		}
		for _, r := range out.Replicas {
			if r.DB != app.path || r.Report.Database == nil || r.Report.Database.Status != verify.StatusInSync {
				t.Errorf("verify %v: replica %s: %+v", args, r.Name, r.Report.Database)
			}
		}
	}
	out := runVerifyJSON(t, 0, "-replica", "far", app.path)
	if len(out.Replicas) != 1 || out.Replicas[0].Name != "far" {
		t.Fatalf("-replica far: %+v", out.Replicas)
	}

	// The far replica gets another database's history: each replica
	// disagrees with the other, and the far one with the database.
	other := newAppDB(t, filepath.Join(dir, "other.db"), 7)
	os.RemoveAll(filepath.Join(dir, "far"))
	mustRun(t, "replicate", "-once", other.path, "file://"+filepath.Join(dir, "far"))
	other.insert(2) // 9 rows at TXID 2, where app.db has 8
	mustRun(t, "replicate", "-once", other.path, "file://"+filepath.Join(dir, "far"))
	out = runVerifyJSON(t, 1)
	kinds := map[string][]verify.Kind{}
	for _, r := range out.Replicas {
		for _, p := range r.Report.Problems {
			kinds[r.Name] = append(kinds[r.Name], p.Kind)
		}
	}
	// far: against near, and against the database's staged TXID 2.
	if count(kinds["near"], verify.KindDiverged) != 1 || count(kinds["far"], verify.KindDiverged) != 2 {
		t.Fatalf("problems by replica: %v", kinds)
	}
	if out.Replicas[1].Report.Database.Status != verify.StatusDiverged {
		t.Errorf("far replica against the database: %+v", out.Replicas[1].Report.Database)
	}
}

// TestVerifyUnnamedReplicas: two replicas without a name, of one type,
// are told apart ("file", "file#2"): verify checks each, and -replica
// selects the second. Both were named "file", and verify checked the
// first twice.
func TestVerifyUnnamedReplicas(t *testing.T) {
	dir := t.TempDir()
	app := newAppDB(t, filepath.Join(dir, "app.db"), 5)
	cfg := filepath.Join(dir, "walship.yml")
	second := filepath.Join(dir, "second")
	os.WriteFile(cfg, []byte("dbs:\n  - path: "+app.path+"\n    replicas:\n      - path: "+filepath.Join(dir, "first")+
		"\n      - path: "+second+"\n"), 0o644)
	t.Setenv("WALSHIP_CONFIG", cfg)
	mustRun(t, "replicate", "-once")
	out := runVerifyJSON(t, 0)
	if len(out.Replicas) != 2 || out.Replicas[0].Name != "file" || out.Replicas[1].Name != "file#2" {
		t.Fatalf("verify: %+v", out.Replicas)
	}

	// Only the second replica loses its files: verify must say so.
	if err := os.RemoveAll(filepath.Join(second, "ltx")); err != nil {
		t.Fatal(err)
	}
	out = runVerifyJSON(t, 1)
	if len(out.Replicas) != 2 || len(out.Replicas[0].Report.Problems) != 0 || len(out.Replicas[1].Report.Problems) == 0 {
		t.Fatalf("verify after the second replica lost its files: %+v", out.Replicas)
	}
	out = runVerifyJSON(t, 1, "-replica", "file#2", app.path)
	if len(out.Replicas) != 1 || out.Replicas[0].Name != "file#2" {
		t.Fatalf("-replica file#2: %+v", out.Replicas)
	}
	var dbs []databaseJSON
	if err := json.Unmarshal([]byte(mustRun(t, "databases", "-json")), &dbs); err != nil {
		t.Fatal(err)
	}
	if len(dbs) != 1 || len(dbs[0].Replicas) != 2 || dbs[0].Replicas[0].Name != "file" || dbs[0].Replicas[1].Name != "file#2" {
		t.Fatalf("databases -json: %+v", dbs)
	}
}

func count(kinds []verify.Kind, k verify.Kind) int {
	n := 0
	for _, x := range kinds {
		if x == k {
			n++
		}
	}
	return n
}

// TestVerifyProblems: each kind of damage makes verify exit 1 and name the
// file, what is wrong and the fix, in text and in JSON.
func TestVerifyProblems(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, r *replicated) string // returns the damaged object
		kind   verify.Kind
	}{
		{"flipped byte at level 0", func(t *testing.T, r *replicated) string { return flip(t, r.file(t, 0, 3)) }, verify.KindChecksum},
		{"flipped byte at level 2", func(t *testing.T, r *replicated) string { return flip(t, r.file(t, 2, 2)) }, verify.KindChecksum},
		{"flipped byte in the snapshot", func(t *testing.T, r *replicated) string { return flip(t, r.file(t, storage.SnapshotLevel, 1)) }, verify.KindChecksum},
		{"truncated", func(t *testing.T, r *replicated) string {
			p := r.file(t, 0, 4)
			b, _ := os.ReadFile(p)
			replace(t, p, b[:len(b)-40])
			return object(p)
		}, verify.KindTruncated},
		{"missing file in the middle", func(t *testing.T, r *replicated) string {
			os.Remove(r.file(t, 0, 3))
			return object(r.file(t, 0, 4))
		}, verify.KindGap},
		{"foreign file", func(t *testing.T, r *replicated) string {
			other := newReplicatedRows(t, 6)
			p := r.file(t, 0, 3)
			b, _ := os.ReadFile(other.file(t, 0, 3))
			replace(t, p, b)
			return object(p)
		}, verify.KindChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReplicated(t)
			obj := tt.damage(t, r)
			code, stdout, stderr := runCLI(t, "verify", r.replica)
			want := "problem (" + string(tt.kind) + ") " + obj + ": "
			if code != 1 || !strings.Contains(stdout, want) || !strings.Contains(stdout, "\n    fix: ") || !strings.Contains(stderr, "walship: verify found") {
				t.Fatalf("exit %d; want 1 and %q\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
			}
			out := runVerifyJSON(t, 1, r.replica)
			found := false
			for _, p := range out.Replicas[0].Report.Problems {
				found = found || p.Kind == tt.kind && p.Object == obj && p.Message != "" && p.Fix != ""
			}
			if out.Whole || out.Problems == 0 || !found {
				t.Fatalf("verify -json: whole %v, %d problems, none of kind %s about %s: %+v", out.Whole, out.Problems, tt.kind, obj, out.Replicas[0].Report.Problems)
			}
		})
	}
}

// TestVerifyBehindAndAhead compares a replica with its database.
func TestVerifyBehindAndAhead(t *testing.T) {
	t.Run("behind", func(t *testing.T) {
		// The newest file never reached the replica.
		r := newReplicated(t)
		os.Remove(r.file(t, 0, 4))
		code, stdout, _ := runCLI(t, "verify", r.app.path, "file://"+r.replica)
		if code != 1 || !strings.Contains(stdout, "problem (behind) replica: the replica lacks the newest TXID") || !strings.Contains(stdout, "in flight") {
			t.Fatalf("exit %d:\n%s", code, stdout)
		}
	})
	t.Run("ahead", func(t *testing.T) {
		// The database and its staging directory are put back as they
		// were at TXID 2; the replica kept TXIDs 3 and 4.
		noConfig(t)
		dir := t.TempDir()
		app := newAppDB(t, filepath.Join(dir, "app.db"), 5)
		replica := "file://" + filepath.Join(dir, "replica")
		mustRun(t, "replicate", "-once", app.path, replica)
		app.insert(1)
		mustRun(t, "replicate", "-once", app.path, replica)
		app.db.Close()
		saved := filepath.Join(dir, "saved")
		staging := walship.MetaPath(app.path)
		if err := testutil.CopyTree(staging, filepath.Join(saved, "staging")); err != nil {
			t.Fatal(err)
		}
		if err := testutil.CopyTree(app.path, filepath.Join(saved, "app.db")); err != nil {
			t.Fatal(err)
		}
		later := reopenAppDB(t, app.path)
		for range 2 {
			later.insert(1)
			mustRun(t, "replicate", "-once", app.path, replica)
		}
		later.db.Close()
		for _, p := range []string{app.path, app.path + "-wal", app.path + "-shm", staging} {
			os.RemoveAll(p)
		}
		if err := testutil.CopyTree(filepath.Join(saved, "staging"), staging); err != nil {
			t.Fatal(err)
		}
		if err := testutil.CopyTree(filepath.Join(saved, "app.db"), app.path); err != nil {
			t.Fatal(err)
		}

		code, stdout, stderr := runCLI(t, "verify", app.path, replica)
		if code != 1 || !strings.Contains(stdout, "problem (ahead) replica: the replica holds TXIDs up to 0000000000000004, beyond 0000000000000002") {
			t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
		}
	})
}

// TestVerifyCouldNotCheck: an unreachable store, or a config that cannot
// be read, is exit status 3; a mistake on the command line 2.
func TestVerifyCouldNotCheck(t *testing.T) {
	noConfig(t)
	t.Setenv("WALSHIP_WEBDAV_PASSWORD", "topsecret")
	// Nothing listens on port 1. (Not S3: its SDK retries for minutes.)
	unreachable := "webdav://walship@127.0.0.1:1/db"
	code, stdout, stderr := runCLI(t, "verify", unreachable)
	if code != 3 || !strings.Contains(stdout, "could not check") || !strings.Contains(stderr, "verify could not check 1 of 1 replica") || strings.Contains(stdout+stderr, "topsecret") {
		t.Fatalf("unreachable store: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// No credentials to log in with.
	if code, _, stderr := runCLI(t, "verify", "sftp://walship@127.0.0.1:1/db"); code != 3 || !strings.Contains(stderr, "no credentials") {
		t.Errorf("sftp without credentials: exit %d, %q", code, stderr)
	}
	out := runVerifyJSON(t, 3, unreachable)
	if out.Whole || len(out.Replicas) != 1 || out.Replicas[0].Error == "" || out.Replicas[0].Report != nil {
		t.Fatalf("verify -json of an unreachable store: %+v", out)
	}
	if code, _, stderr := runCLI(t, "verify", "-config", filepath.Join(t.TempDir(), "none.yml")); code != 3 || !strings.Contains(stderr, "not found") {
		t.Errorf("missing config: exit %d, %q", code, stderr)
	}
	for _, args := range [][]string{
		{"verify", "-parallelism", "0", "x"},
		{"verify", "a", "b", "c"},
		{"verify", "-replica", "x", "file:///tmp/x"},
		{"verify", "-bogus"},
	} {
		if code, _, stderr := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, %q; want 2", args, code, stderr)
		}
	}
}

// TestRestoreDryRunChecksChain: a dry run fails, as the restore would, on a
// chain whose checksums do not follow.
func TestRestoreDryRunChecksChain(t *testing.T) {
	r := newReplicated(t)
	other := newReplicatedRows(t, 6)
	out := filepath.Join(t.TempDir(), "out.db")
	mustRun(t, "restore", "-dry-run", "-o", out, r.replica)

	b, _ := os.ReadFile(other.file(t, 0, 3))
	replace(t, r.file(t, 0, 3), b)
	for _, args := range [][]string{{"-dry-run"}, {}} {
		code, stdout, stderr := runCLI(t, append(append([]string{"restore"}, args...), "-o", out, r.replica)...)
		if code != 1 || !strings.Contains(stderr, "level 0 file 0000000000000003-0000000000000003.ltx") || !strings.Contains(stderr, "pre-apply checksum") {
			t.Errorf("restore %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, stdout, stderr)
		}
		if exists(out) {
			t.Fatalf("restore %v wrote %s", args, out)
		}
	}
}

// object names a replica file as verify does.
func object(path string) string {
	minTXID, maxTXID, _ := storage.ParseFileName(path)
	level, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
	return storage.Describe(level, minTXID, maxTXID)
}

// flip flips a byte of the first page's data of an LTX file, and returns its
// object name.
func flip(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := ltx.HeaderSize + ltx.PageHeaderSize
	n := len(b) - off - ltx.TrailerSize
	if binary.BigEndian.Uint16(b[ltx.HeaderSize+4:])&ltx.PageHeaderFlagSize != 0 {
		n = int(binary.BigEndian.Uint32(b[off:]))
		off += 4
	}
	b = bytes.Clone(b)
	b[off+n/2] ^= 0x55
	replace(t, path, b)
	return object(path)
}

// replace writes b in place of a replica file. The replica file may be a
// hard link of a staged one, so it is replaced, never changed in place.
func replace(t *testing.T, path string, b []byte) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".new", b, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path+".new", fi.ModTime(), fi.ModTime())
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// reopenAppDB opens an existing application database.
func reopenAppDB(t *testing.T, path string) *appDB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return &appDB{t: t, path: path, db: db, next: n}
}

// TestVerifyAfterTakeover: a replica another database took over holds two
// histories on purpose, the new one apart from the old (a snapshot starts
// it): whole for the new owner, ahead of the old one.
func TestVerifyAfterTakeover(t *testing.T) {
	r := newReplicated(t)
	newOwner := newAppDB(t, filepath.Join(t.TempDir(), "new.db"), 9)
	mustRun(t, "replicate", "-once", "-takeover", newOwner.path, "file://"+r.replica)
	newOwner.insert(2)
	mustRun(t, "replicate", "-once", newOwner.path, "file://"+r.replica)

	out := runVerifyJSON(t, 0, newOwner.path, "file://"+r.replica)
	if rep := out.Replicas[0].Report; rep.UnreachablePoints != 0 || rep.RestorePoints < 6 || rep.Database.Status != verify.StatusInSync {
		t.Fatalf("the new owner's replica: %d restore points, %d unreachable, database %+v", rep.RestorePoints, rep.UnreachablePoints, rep.Database)
	}
	code, stdout, _ := runCLI(t, "verify", r.app.path, "file://"+r.replica)
	if code != 1 || !strings.Contains(stdout, "problem (ahead) replica") {
		t.Fatalf("the old owner: exit %d\n%s", code, stdout)
	}
}

// verify and status (no process running) without an argument include the
// databases a directory entry holds now, each read from its own path
// under the replica.
func TestVerifyAndStatusDirectory(t *testing.T) {
	dir := t.TempDir()
	tenants := filepath.Join(dir, "tenants")
	os.Mkdir(tenants, 0o755)
	base := filepath.Join(dir, "replica")
	cfg := filepath.Join(dir, "walship.yml")
	os.WriteFile(cfg, []byte("dbs:\n  - dir: "+tenants+"\n    pattern: \"*.db\"\n    replica:\n      url: file://"+base+"\n"), 0o644)
	t.Setenv("WALSHIP_CONFIG", cfg)
	var want []string
	for _, name := range []string{"a.db", "b.db"} {
		app := newAppDB(t, filepath.Join(tenants, name), 3)
		mustRun(t, "replicate", "-once", app.path, "file://"+filepath.Join(base, name))
		want = append(want, app.path)
	}
	os.WriteFile(filepath.Join(tenants, "notes.db"), []byte("not SQLite"), 0o644)

	out := runVerifyJSON(t, 0)
	var got []string
	for _, r := range out.Replicas {
		got = append(got, r.DB)
	}
	if !slices.Equal(got, want) || !out.Whole {
		t.Fatalf("verify of the directory's databases: %v (whole %t), want %v", got, out.Whole, want)
	}
	_, stdout, _ := runCLI(t, "status", "-json")
	var rep monitor.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("status -json printed %q: %v", stdout, err)
	}
	got = nil
	for _, db := range rep.DBs {
		got = append(got, db.Path)
		if len(db.Replicas) != 1 || db.Replicas[0].TXID == 0 {
			t.Errorf("status of %s: %+v", db.Path, db)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("status of the directory's databases: %v, want %v", got, want)
	}
}
