package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/walship/walship/internal/testutil"
)

// runCLI runs the command line and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCLICtx(context.Background(), args...)
}

func runCLICtx(ctx context.Context, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// waitFiles waits up to 10s for n files to match pattern.
func waitFiles(pattern string, n int) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(pattern)
		if len(files) >= n || time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mustRun runs the command line and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("walship %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// noConfig points the default config path at a file that does not exist.
func noConfig(t *testing.T) {
	t.Setenv("WALSHIP_CONFIG", filepath.Join(t.TempDir(), "absent.yml"))
}

// appDB is an application database in WAL mode with a table t.
type appDB struct {
	t    *testing.T
	path string
	db   *sql.DB
	next int
}

func newAppDB(t *testing.T, path string, rows int) *appDB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	a := &appDB{t: t, path: path, db: db}
	a.insert(rows)
	return a
}

func (a *appDB) insert(n int) {
	a.t.Helper()
	tx, err := a.db.Begin()
	if err != nil {
		a.t.Fatal(err)
	}
	for range n {
		a.next++
		if _, err := tx.Exec("INSERT INTO t (id, v) VALUES (?, ?)", a.next, fmt.Sprintf("row %d %s", a.next, strings.Repeat("x", 200))); err != nil {
			a.t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		a.t.Fatal(err)
	}
}

// contents returns the rows of t in a database file, read-only.
func contents(t *testing.T, path string) []string {
	t.Helper()
	rows, err := testutil.Strings(context.Background(), path, "SELECT id || ':' || v FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func sameRows(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("restored %d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("row %d differs: %.40q vs %.40q", i, got[i], want[i])
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestReplicateOnceAndRestore(t *testing.T) {
	noConfig(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	app := newAppDB(t, dbPath, 10)

	mustRun(t, "replicate", "-once", dbPath, "file://"+replica)
	// The first sync is a snapshot, written once: at the snapshot level.
	if p := filepath.Join(replica, "ltx", "9", "0000000000000001-0000000000000001.ltx"); !exists(p) {
		t.Fatalf("%s was not written", p)
	}
	if l0, _ := filepath.Glob(filepath.Join(replica, "ltx", "0", "*.ltx")); len(l0) != 0 {
		t.Fatalf("the first snapshot was uploaded twice: level 0 holds %v too", l0)
	}
	state1 := contents(t, dbPath)

	app.insert(5)
	mustRun(t, "replicate", "-once", dbPath, "file://"+replica)
	if p := filepath.Join(replica, "ltx", "0", "0000000000000002-0000000000000002.ltx"); !exists(p) {
		t.Fatalf("%s was not written", p)
	}
	state2 := contents(t, dbPath)

	t.Run("ltx", func(t *testing.T) {
		var files []fileJSON
		if err := json.Unmarshal([]byte(mustRun(t, "ltx", "-json", replica)), &files); err != nil {
			t.Fatal(err)
		}
		var l0, l9 int
		for _, f := range files {
			switch f.Level {
			case 0:
				l0++
			case 9:
				l9++
			}
			if _, err := time.Parse(time.RFC3339, f.CreatedAt); err != nil || f.Size <= 0 {
				t.Errorf("bad file entry %+v", f)
			}
		}
		// Level 0 holds TXID 2; TXID 1 is the level-9 snapshot, which
		// retention lets stand for it.
		if l0 != 1 || l9 != 1 {
			t.Fatalf("ltx -json listed %d level-0 and %d level-9 files, want 1 and 1: %+v", l0, l9, files)
		}
		var only0 []fileJSON
		json.Unmarshal([]byte(mustRun(t, "ltx", "-json", "-level", "0", "file://"+replica)), &only0)
		if len(only0) != 1 || only0[0].MinTXID != 2 {
			t.Fatalf("ltx -level 0: %+v", only0)
		}
		text := mustRun(t, "ltx", replica)
		if !strings.Contains(text, "LEVEL") || !strings.Contains(text, "0000000000000002") {
			t.Fatalf("ltx text output:\n%s", text)
		}
	})

	out := filepath.Join(dir, "out", "restored.db")
	t.Run("restore", func(t *testing.T) {
		stdout := mustRun(t, "restore", "-o", out, replica)
		if !strings.HasPrefix(stdout, "restored TXID 0000000000000002 to "+out) {
			t.Fatalf("restore printed %q", stdout)
		}
		sameRows(t, contents(t, out), state2)
	})

	t.Run("existing output", func(t *testing.T) {
		code, _, stderr := runCLI(t, "restore", "-o", out, replica)
		if code != 1 || !strings.Contains(stderr, "already exists") || !strings.Contains(stderr, "-force") || !strings.HasPrefix(stderr, "walship: ") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		mustRun(t, "restore", "-force", "-o", out, replica)
		mustRun(t, "restore", "-o", out, "-force", "file://"+replica) // flags after the argument too
		sameRows(t, contents(t, out), state2)

		// A Litestream command line that follows (-f) never overwrites a
		// database: -f means follow, and follow keeps only its own copy.
		before, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		code, _, stderr = runCLI(t, "restore", "-f", "-o", out, replica)
		if code != 1 || !strings.Contains(stderr, "never overwrites") || !strings.Contains(stderr, "-force") {
			t.Fatalf("restore -f onto a database: exit %d, stderr %q", code, stderr)
		}
		code, _, stderr = runCLI(t, "restore", "-f", "-force", "-o", out, replica)
		if code != 2 || !strings.Contains(stderr, "-follow and -force") {
			t.Fatalf("restore -f -force: exit %d, stderr %q", code, stderr)
		}
		if after, _ := os.ReadFile(out); !bytes.Equal(before, after) {
			t.Fatal("restore -f changed the database at the output")
		}

		stdout := mustRun(t, "restore", "-if-db-not-exists", "-o", out, replica)
		if !strings.Contains(stdout, "already exists") {
			t.Fatalf("-if-db-not-exists printed %q", stdout)
		}

		code, stdout, stderr = runCLI(t, "restore", "-json", "-o", out, replica)
		var e struct{ Error string }
		if code != 1 || stdout != "" || json.Unmarshal([]byte(stderr), &e) != nil || !strings.Contains(e.Error, "already exists") {
			t.Fatalf("-json error: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})

	t.Run("json", func(t *testing.T) {
		p := filepath.Join(dir, "json.db")
		var res struct {
			Path  string
			TXID  string
			Files int
		}
		if err := json.Unmarshal([]byte(mustRun(t, "restore", "-json", "-o", p, replica)), &res); err != nil {
			t.Fatal(err)
		}
		if res.Path != p || res.TXID != "0000000000000002" || res.Files != 2 {
			t.Fatalf("result %+v", res)
		}
	})

	t.Run("dry-run", func(t *testing.T) {
		p := filepath.Join(dir, "dry.db")
		var plan planJSON
		if err := json.Unmarshal([]byte(mustRun(t, "restore", "-dry-run", "-json", "-o", p, replica)), &plan); err != nil {
			t.Fatal(err)
		}
		if plan.TXID != 2 || len(plan.Files) != 2 || plan.Files[0].Level != 9 || !plan.DryRun {
			t.Fatalf("plan %+v", plan)
		}
		text := mustRun(t, "restore", "-dry-run", "-o", p, replica)
		if !strings.Contains(text, "dry run") || !strings.Contains(text, "0000000000000002") {
			t.Fatalf("dry run printed:\n%s", text)
		}
		if left := restoreFiles(t, p); len(left) > 0 {
			t.Fatalf("dry run wrote %v", left)
		}
	})

	t.Run("parallelism", func(t *testing.T) {
		for _, n := range []string{"1", "2", "64"} {
			p := filepath.Join(dir, "parallel"+n, "restored.db")
			mustRun(t, "restore", "-parallelism", n, "-o", p, replica)
			if entries, err := os.ReadDir(filepath.Dir(p)); err != nil || len(entries) != 1 {
				t.Fatalf("-parallelism %s left %v, %v", n, entries, err)
			}
			sameRows(t, contents(t, p), state2)
		}
		_, _, stderr := runCLI(t, "restore", "-h")
		if !strings.Contains(stderr, "-parallelism") {
			t.Fatalf("restore -h does not mention -parallelism:\n%s", stderr)
		}
	})

	t.Run("txid", func(t *testing.T) {
		p := filepath.Join(dir, "txid1.db")
		mustRun(t, "restore", "-txid", "1", "-o", p, replica)
		sameRows(t, contents(t, p), state1)

		code, _, stderr := runCLI(t, "restore", "-txid", "9", "-o", filepath.Join(dir, "txid9.db"), replica)
		if code != 1 || !strings.Contains(stderr, "newest TXID is 0000000000000002") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})

	t.Run("timestamp", func(t *testing.T) {
		p := filepath.Join(dir, "ts.db")
		code, _, stderr := runCLI(t, "restore", "-timestamp", "2000-01-01T00:00:00Z", "-o", p, replica)
		if code != 1 || !strings.Contains(stderr, "no backup was written at or before 2000-01-01T00:00:00Z") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		if left := restoreFiles(t, p); len(left) > 0 {
			t.Fatalf("a failed restore left %v behind", left)
		}
		mustRun(t, "restore", "-timestamp", time.Now().Add(time.Hour).Format(time.RFC3339), "-o", p, replica)
		sameRows(t, contents(t, p), state2)
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"restore", replica}, // no -o
			{"restore", "-txid", "1", "-timestamp", "2020-01-01T00:00:00Z", "-o", "x.db", replica},
			{"restore", "-txid", "zz", "-o", "x.db", replica},
			{"restore", "-timestamp", "yesterday", "-o", "x.db", replica},
			{"restore", "-integrity-check", "paranoid", "-o", "x.db", replica},
			{"restore", "-parallelism", "0", "-o", "x.db", replica},
			{"restore", "-parallelism", "-3", "-o", "x.db", replica},
			{"restore"},
			{"ltx", "-level", "12", replica},
			{"replicate", dbPath},
		} {
			code, _, stderr := runCLI(t, args...)
			if code != 2 || !strings.HasPrefix(stderr, "walship: ") {
				t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
			}
		}
	})
}

func TestRestoreIfReplicaExists(t *testing.T) {
	noConfig(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	out := filepath.Join(dir, "out.db")
	stdout := mustRun(t, "restore", "-if-replica-exists", "-o", out, empty)
	if !strings.Contains(stdout, "holds no backup") {
		t.Fatalf("printed %q", stdout)
	}
	code, _, stderr := runCLI(t, "restore", "-o", out, "file://"+empty)
	if code != 1 || !strings.Contains(stderr, "holds no backup") || !strings.Contains(stderr, "-if-replica-exists") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if exists(out) {
		t.Fatal("output written")
	}
}

func TestReplicateNotSQLite(t *testing.T) {
	noConfig(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "notes.txt")
	os.WriteFile(bad, []byte(strings.Repeat("this is not a database\n", 20)), 0o644)
	replica := filepath.Join(dir, "replica")
	code, _, stderr := runCLI(t, "replicate", "-once", bad, "file://"+replica)
	if code != 1 || !strings.Contains(stderr, bad) || !strings.Contains(stderr, "not a SQLite database") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if entries, _ := os.ReadDir(replica); len(entries) != 0 {
		t.Fatalf("the replica directory holds %v", entries)
	}

	code, _, stderr = runCLI(t, "replicate", "-once", filepath.Join(dir, "missing.db"), replica)
	if code != 1 || !strings.Contains(stderr, "does not exist") {
		t.Fatalf("missing db: exit %d, stderr %q", code, stderr)
	}
}

func TestReplicateUnknownScheme(t *testing.T) {
	noConfig(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	newAppDB(t, dbPath, 1)
	code, _, stderr := runCLI(t, "replicate", "-once", dbPath, "ftp://host/x")
	if code != 1 || !strings.Contains(stderr, "unknown replica URL scheme") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestReplicateNoConfig(t *testing.T) {
	noConfig(t)
	path := os.Getenv("WALSHIP_CONFIG")
	code, _, stderr := runCLI(t, "replicate")
	if code != 1 || !strings.Contains(stderr, path) || !strings.Contains(stderr, "DB_PATH REPLICA_URL") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "replicate", "-config", path)
	if code != 1 || !strings.Contains(stderr, "not found") {
		t.Fatalf("explicit missing config: exit %d, stderr %q", code, stderr)
	}
}

func TestReplicateConfigBadKey(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "walship.yml")
	os.WriteFile(cfg, []byte("dbs:\n  - path: "+filepath.Join(dir, "app.db")+"\n    sync-intervall: 1s\n    replica:\n      url: file://"+dir+"/r\n"), 0o644)
	code, _, stderr := runCLI(t, "replicate", "-once", "-config", cfg)
	if code != 1 || !strings.Contains(stderr, cfg+":3") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestReplicateConfig(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	app := newAppDB(t, dbPath, 3)
	cfg := filepath.Join(dir, "walship.yml")
	t.Setenv("WALSHIP_TEST_DIR", replica)
	os.WriteFile(cfg, []byte(`mcp-addr: ":3001"
logging:
  level: debug
dbs:
  - path: `+dbPath+`
    sync-interval: 100ms
    replica:
      name: backup
      url: file://${WALSHIP_TEST_DIR}
`), 0o644)
	t.Setenv("WALSHIP_CONFIG", cfg) // the default config path

	code, _, stderr := runCLI(t, "replicate", "-once")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if !strings.Contains(stderr, `msg="mcp-addr: has no effect in walship: walship has no MCP server`) || !strings.Contains(stderr, "line=1") {
		t.Errorf("no warning about the unused key:\n%s", stderr)
	}
	if !strings.Contains(stderr, "replicating") || !strings.Contains(stderr, "replica=backup") || !strings.Contains(stderr, "level=DEBUG") {
		t.Errorf("start log line missing or logging.level ignored:\n%s", stderr)
	}
	app.insert(2)
	mustRun(t, "replicate", "-once", "-config", cfg)

	// Restore by database path: the config's replica, -o defaulting to the
	// database itself.
	code, _, stderr = runCLI(t, "restore", dbPath)
	if code != 1 || !strings.Contains(stderr, dbPath+" already exists") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	mustRun(t, "restore", "-if-db-not-exists", dbPath)
	out := filepath.Join(dir, "out.db")
	mustRun(t, "restore", "-replica", "backup", "-o", out, dbPath)
	sameRows(t, contents(t, out), contents(t, dbPath))

	// Two one-shot runs: the first snapshot (level 9), the second run's
	// TXID at level 0, and no TXID beyond it at any level.
	var files []fileJSON
	json.Unmarshal([]byte(mustRun(t, "ltx", "-json", dbPath)), &files)
	var snapshot, second bool
	for _, f := range files {
		snapshot = snapshot || f.Level == 9 && f.MinTXID == 1 && f.MaxTXID == 1
		second = second || f.Level == 0 && f.MinTXID == 2 && f.MaxTXID == 2
		if f.MaxTXID > 2 {
			t.Fatalf("ltx lists a file beyond TXID 2: %+v", f)
		}
	}
	if !snapshot || !second {
		t.Fatalf("ltx of the configured database: %+v", files)
	}

	// -no-expand-env leaves ${WALSHIP_TEST_DIR} unexpanded.
	code, _, stderr = runCLI(t, "restore", "-no-expand-env", "-o", filepath.Join(dir, "x.db"), dbPath)
	if code != 1 || !strings.Contains(stderr, cfg+":8") || !strings.Contains(stderr, "${WALSHIP_TEST_DIR}") {
		t.Fatalf("-no-expand-env: exit %d, stderr %q", code, stderr)
	}

	code, _, stderr = runCLI(t, "replicate", "-sync-interval", "1s")
	if code != 2 || !strings.Contains(stderr, "sync-interval") {
		t.Fatalf("-sync-interval in config mode: exit %d, stderr %q", code, stderr)
	}
}

func TestReplicateUntilCancelled(t *testing.T) {
	noConfig(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	app := newAppDB(t, dbPath, 5)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var code int
	var stderr string
	wg.Add(1)
	go func() {
		defer wg.Done()
		code, _, stderr = runCLICtx(ctx, "replicate", "-sync-interval", "20ms", dbPath, "file://"+replica)
	}()
	for i := 0; i < 20; i++ {
		app.insert(3)
		time.Sleep(10 * time.Millisecond)
	}
	// Wait until the replica has a file beyond the snapshot, then stop.
	waitFiles(filepath.Join(replica, "ltx", "0", "*.ltx"), 2)
	app.insert(1)
	cancel()
	wg.Wait()
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	out := filepath.Join(dir, "out.db")
	mustRun(t, "restore", "-o", out, replica)
	sameRows(t, contents(t, out), contents(t, dbPath))
}

func TestDatabases(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "walship.yml")
	os.WriteFile(cfg, []byte(`dbs:
  - path: /var/lib/a.db
    replica:
      url: file:///backups/a
  - path: /var/lib/b.db
    replicas:
      - name: offsite
        url: s3://AKIAKEY:topsecret@bucket/b?region=eu&sig=topsecret2
        secret-access-key: topsecret3
      - type: file
        path: /backups/b
`), 0o644)
	stdout := mustRun(t, "databases", "-config", cfg)
	for _, want := range []string{"/var/lib/a.db", "/var/lib/b.db", "offsite", "s3", "file:///backups/a", "/backups/b", "bucket/b"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("databases output lacks %q:\n%s", want, stdout)
		}
	}
	var dbs []databaseJSON
	jsonOut := mustRun(t, "databases", "-json", "-config", cfg)
	if err := json.Unmarshal([]byte(jsonOut), &dbs); err != nil {
		t.Fatal(err)
	}
	if len(dbs) != 2 || len(dbs[1].Replicas) != 2 || dbs[1].Replicas[1].Name != "file" || dbs[1].Replicas[0].Type != "s3" {
		t.Fatalf("%+v", dbs)
	}
	if strings.Contains(stdout+jsonOut, "topsecret") || strings.Contains(stdout+jsonOut, "AKIAKEY") {
		t.Fatalf("credentials printed:\n%s\n%s", stdout, jsonOut)
	}

	code, _, stderr := runCLI(t, "databases", "-config", filepath.Join(dir, "none.yml"))
	if code != 1 || !strings.Contains(stderr, "none.yml not found") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestVersionAndUsage(t *testing.T) {
	if stdout := mustRun(t, "version"); !strings.HasPrefix(stdout, "walship dev\n") {
		t.Fatalf("version printed %q", stdout)
	}
	if code, _, stderr := runCLI(t); code != 2 || !strings.Contains(stderr, "replicate") {
		t.Fatalf("no args: exit %d, stderr %q", code, stderr)
	}
	if stdout := mustRun(t, "help"); !strings.Contains(stdout, "restore") || !strings.Contains(stdout, "databases") {
		t.Fatalf("help printed %q", stdout)
	}
	if code, _, stderr := runCLI(t, "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Fatalf("unknown verb: exit %d, stderr %q", code, stderr)
	}
	for _, v := range verbs {
		if code, _, stderr := runCLI(t, v.name, "-h"); code != 0 || !strings.Contains(stderr, "Usage: walship "+v.name) {
			t.Errorf("%s -h: exit %d, stderr %q", v.name, code, stderr)
		}
	}
	if code, _, _ := runCLI(t, "restore", "-bogus"); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
}

func TestParseTXID(t *testing.T) {
	for in, want := range map[string]uint64{"1": 1, "1f": 0x1f, "0x2A": 0x2a, "000000000000001f": 0x1f} {
		got, err := parseTXID(in)
		if err != nil || uint64(got) != want {
			t.Errorf("parseTXID(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0", "xyz", "00000000000000001"} {
		if _, err := parseTXID(in); err == nil {
			t.Errorf("parseTXID(%q) accepted", in)
		}
	}
}

// Several databases from one config file, replicated by one process until it
// is stopped.
func TestReplicateConfigSeveralDatabases(t *testing.T) {
	dir := t.TempDir()
	var apps []*appDB
	var cfg strings.Builder
	cfg.WriteString("dbs:\n")
	for i := range 3 {
		db := filepath.Join(dir, fmt.Sprintf("tenant%d.db", i))
		apps = append(apps, newAppDB(t, db, 2))
		fmt.Fprintf(&cfg, "  - path: %s\n    sync-interval: 20ms\n    replica:\n      path: %s\n", db, filepath.Join(dir, fmt.Sprintf("replica%d", i)))
	}
	cfgPath := filepath.Join(dir, "walship.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var code int
	var stderr string
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, _, stderr = runCLICtx(ctx, "replicate", "-config", cfgPath)
	}()
	for range 10 {
		for _, a := range apps {
			a.insert(2)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for i, a := range apps {
		out := filepath.Join(dir, fmt.Sprintf("restored%d.db", i))
		mustRun(t, "restore", "-o", out, filepath.Join(dir, fmt.Sprintf("replica%d", i)))
		sameRows(t, contents(t, out), contents(t, a.path))
	}
}

// Secrets given in a replica URL never reach the output, whatever fails.
func TestSecretsNotPrinted(t *testing.T) {
	noConfig(t)
	out := filepath.Join(t.TempDir(), "out.db")
	for _, u := range []string{
		"s3://AKIAKEY:topsecret@bucket/app?endpoint=http://127.0.0.1:1",
		"sftp://backup:topsecret@127.0.0.1:1/db",
		"webdav://u:topsecret@127.0.0.1:1/db",
		"nats://u:topsecret@127.0.0.1:1/bucket",
		"abs://acct@container/db?sig=topsecret&sv=2020-01-01&endpoint=http://127.0.0.1:1/acct",
	} {
		code, stdout, stderr := runCLI(t, "restore", "-json", "-o", out, u)
		if code == 0 {
			t.Errorf("restore from %s succeeded", u)
		}
		if strings.Contains(stdout+stderr, "topsecret") {
			t.Errorf("restore from %s printed the secret:\n%s%s", u, stdout, stderr)
		}
	}
}

// restoreFiles returns the files a restore to p wrote or left: p, its
// temporary files, its lock and journal.
func restoreFiles(t *testing.T, p string) []string {
	t.Helper()
	dir, base := filepath.Dir(p), filepath.Base(p)
	var left []string
	for _, pattern := range []string{base + "*", "." + base + ".restore-*"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		left = append(left, m...)
	}
	return left
}

// TestRestoreReadsNewestReplica: restore of a configured database with
// several replicas reads the one with the newest state, not the first
// listed, which was left behind (it was down): restored from it, the
// database would go on from the newest replica's TXID without the commits
// between. A replica it cannot read is an error, not skipped.
func TestRestoreReadsNewestReplica(t *testing.T) {
	noConfig(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	behind, ahead := filepath.Join(dir, "behind"), filepath.Join(dir, "ahead")
	app := newAppDB(t, dbPath, 10)
	both := filepath.Join(dir, "both.yml")
	os.WriteFile(both, []byte("dbs:\n  - path: "+dbPath+"\n    replicas:\n      - name: behind\n        path: "+behind+"\n      - name: ahead\n        path: "+ahead+"\n"), 0o644)
	mustRun(t, "replicate", "-once", "-config", both)
	// The replica behind is left out (it was down) while the database
	// moves on.
	app.insert(5)
	aheadOnly := filepath.Join(dir, "ahead.yml")
	os.WriteFile(aheadOnly, []byte("dbs:\n  - path: "+dbPath+"\n    replicas:\n      - name: ahead\n        path: "+ahead+"\n"), 0o644)
	mustRun(t, "replicate", "-once", "-config", aheadOnly)
	want := contents(t, dbPath)

	out := filepath.Join(dir, "out.db")
	mustRun(t, "restore", "-config", both, "-o", out, dbPath)
	sameRows(t, contents(t, out), want)

	// Named, the replica behind is read as asked.
	older := filepath.Join(dir, "older.db")
	mustRun(t, "restore", "-config", both, "-replica", "behind", "-o", older, dbPath)
	if got := len(contents(t, older)); got != 10 {
		t.Fatalf("restore -replica behind: %d rows, want 10", got)
	}

	if err := os.WriteFile(filepath.Join(dir, "ahead-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "walship.yml")
	os.WriteFile(cfg, []byte("dbs:\n  - path: "+dbPath+"\n    replicas:\n      - name: behind\n        path: "+behind+"\n      - name: broken\n        url: file://"+filepath.Join(dir, "ahead-file")+"\n"), 0o644)
	code, _, stderr := runCLI(t, "restore", "-config", cfg, "-o", filepath.Join(dir, "none.db"), dbPath)
	if code == 0 || !strings.Contains(stderr, "cannot read replica broken") || !strings.Contains(stderr, "-replica") {
		t.Fatalf("restore with an unreadable replica: exit %d, stderr %q", code, stderr)
	}
}
