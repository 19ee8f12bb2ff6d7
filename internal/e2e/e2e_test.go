package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/storage/file"
)

// The directory backend runs the same end-to-end test as the remote ones.
func TestFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	Run(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)})
}

func TestFileOwnership(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunOwnership(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)})
}

func TestFileHeal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunHeal(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)})
}

// TestFileLitestreamTakeover: walship takes over a directory replica
// Litestream 0.5 wrote, with Litestream's staging directory left beside
// the database.
func TestFileLitestreamTakeover(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunLitestreamTakeover(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)}, false)
}

// TestFileLitestreamTakeoverWithoutStaging: the same after Litestream's
// staging directory was deleted.
func TestFileLitestreamTakeoverWithoutStaging(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunLitestreamTakeover(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)}, true)
}

// TestFileLitestreamRestore: Litestream 0.5 restores a directory replica
// walship writes with litestream-compatible.
func TestFileLitestreamRestore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunLitestreamRestore(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)})
}

// TestFileEncrypted: the directory backend, encrypted.
func TestFileEncrypted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunEncrypted(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)})
}

// TestFileEncryptedBesidePlain: one database, two replicas, one encrypted
// and the other not. Both restore the application's last state exactly;
// the plain one holds the marker the application wrote in its objects,
// the encrypted one holds it in none, and each of its objects starts with
// crypt.Magic.
func TestFileEncryptedBesidePlain(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bin := Binary(t)
	dbPath, keyPath := filepath.Join(dir, "app.db"), filepath.Join(dir, "replica.key")
	keygen(t, bin, keyPath)
	dirs := map[string]string{"sealed": filepath.Join(dir, "sealed"), "plain": filepath.Join(dir, "plain")}
	cfgPath := writeReplicasConfig(t, filepath.Join(dir, "walship.yml"), dbPath,
		"name: sealed\nurl: file://"+dirs["sealed"]+"\nencryption-key-path: "+keyPath,
		"name: plain\nurl: file://"+dirs["plain"])

	marker := newMarker()
	w := startMarkedWriter(t, dbPath, marker)
	p := startWalship(t, bin, nil, "replicate", "-config", cfgPath)
	time.Sleep(1500 * time.Millisecond)
	stopAll(t, bin, nil, cfgPath, p, w)

	for name, d := range dirs {
		out := filepath.Join(dir, name+".db")
		run(t, bin, nil, "restore", "-config", cfgPath, "-replica", name, "-o", out, dbPath)
		if got := imageOfFile(t, out); got != w.last {
			t.Fatalf("replica %s does not restore the application's last state", name)
		}
		s := scanObjects(t, ctx, file.New(d), marker)
		t.Logf("replica %s: %d objects, %d not encrypted, %d holding the marker", name, s.objects, len(s.plain), len(s.marked))
		if s.objects == 0 {
			t.Fatalf("replica %s holds no object", name)
		}
		if name == "sealed" {
			if len(s.plain) > 0 || len(s.marked) > 0 {
				t.Fatalf("the encrypted replica holds objects not encrypted (%s) or holding the marker (%s)", strings.Join(s.plain, ", "), strings.Join(s.marked, ", "))
			}
		} else if len(s.plain) != s.objects || len(s.marked) == 0 {
			t.Fatalf("the plain replica holds %d objects, %d not encrypted, %d holding the marker; want all plain and the marker in some", s.objects, len(s.plain), len(s.marked))
		}
	}
}

// TestFileExec: replicate -exec and restore on first boot, through the
// binary, on a directory replica (see e2e.RunExec).
func TestFileExec(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunExec(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)})
}

// TestFileExecReplicationLost: the application is stopped when its
// database's replica is taken over (see e2e.RunExecReplicationLost).
func TestFileExecReplicationLost(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunExecReplicationLost(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)})
}

// TestFileFollow: a read replica of a directory replica, read by another
// connection all along (RunFollow).
func TestFileFollow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "replica")
	RunFollow(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)})
}

// TestFileStandby: failover between two nodes through a directory replica
// (see e2e.RunStandby); WALSHIP_STANDBY_CYCLES=20 for the long run.
func TestFileStandby(t *testing.T) {
	dir := t.TempDir()
	RunStandby(t, Replica{YAML: "url: file://" + dir, Client: file.New(dir)}, StandbyCycles(3))
}
