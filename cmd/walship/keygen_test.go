package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestKeygen: keygen writes a key its owner alone can read, says its ID,
// and never overwrites a file.
func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.key")
	out := mustRun(t, "keygen", path)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	if !strings.HasPrefix(out, "wrote key ") || len(strings.Fields(out)[2]) != 16 {
		t.Fatalf("keygen said %q; want the key's ID", out)
	}
	before, _ := os.ReadFile(path)
	if code, _, stderr := runCLI(t, "keygen", path); code == 0 || !strings.Contains(stderr, "does not overwrite") {
		t.Fatalf("keygen over an existing file: exit %d, %s", code, stderr)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("the key file changed")
	}
}

// TestEncryptedReplica: with a key, replicate, restore, ltx and verify
// work and the replica holds no plaintext; without the key, with another
// key, or with a key file others can read, each command fails saying why
// and restore writes nothing; the key given in the config never prints.
func TestEncryptedReplica(t *testing.T) {
	noConfig(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	key, other := filepath.Join(dir, "app.key"), filepath.Join(dir, "other.key")
	mustRun(t, "keygen", key)
	mustRun(t, "keygen", other)
	app := newAppDB(t, dbPath, 50)
	mustRun(t, "replicate", "-once", "-encryption-key-path", key, dbPath, "file://"+replica)
	app.insert(5)
	mustRun(t, "replicate", "-once", "-encryption-key-path", key, dbPath, "file://"+replica)
	want := contents(t, dbPath)

	err := filepath.WalkDir(filepath.Join(replica, "ltx"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(b), "walship\x01") || strings.Contains(string(b), "row ") {
			t.Errorf("%s is not encrypted", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "out.db")
	mustRun(t, "restore", "-encryption-key-path", key, "-o", out, replica)
	if got := contents(t, out); !slices.Equal(got, want) {
		t.Fatalf("restored %d rows; want %d", len(got), len(want))
	}
	if s := mustRun(t, "verify", "-encryption-key-path", key, "file://"+replica); !strings.Contains(s, "whole") {
		t.Fatalf("verify:\n%s", s)
	}
	mustRun(t, "ltx", "-encryption-key-path", key, replica)

	loose := filepath.Join(dir, "loose.key")
	b, _ := os.ReadFile(key)
	if err := os.WriteFile(loose, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{nil, "is encrypted with key"},
		{[]string{"-encryption-key-path", other}, "written with another encryption key"},
		{[]string{"-encryption-key-path", loose}, "chmod 600"},
	} {
		out := filepath.Join(dir, "failed.db")
		args := append(append([]string{"restore"}, tc.flags...), "-o", out, replica)
		code, _, stderr := runCLI(t, args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("restore %v: exit %d, %s; want an error saying %q", tc.flags, code, stderr, tc.want)
		}
		if left := restoreFiles(t, out); len(left) > 0 {
			t.Errorf("restore %v left %v", tc.flags, left)
		}
		if code, stdout, stderr := runCLI(t, append(append([]string{"verify"}, tc.flags...), replica)...); code == 0 || !strings.Contains(stdout+stderr, tc.want) {
			t.Errorf("verify %v: exit %d, %s%s; want an error saying %q", tc.flags, code, stdout, stderr, tc.want)
		}
	}

	// The key in the config, from the environment.
	hexKey := strings.TrimSpace(string(b))
	t.Setenv("APP_KEY", hexKey)
	cfg := filepath.Join(dir, "walship.yml")
	if err := os.WriteFile(cfg, []byte("dbs:\n  - path: "+dbPath+"\n    replica:\n      url: file://"+replica+"\n      encryption-key: ${APP_KEY}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	app.insert(5)
	mustRun(t, "replicate", "-once", "-config", cfg)
	out2 := filepath.Join(dir, "out2.db")
	mustRun(t, "restore", "-config", cfg, "-o", out2, dbPath)
	if got, want := contents(t, out2), contents(t, dbPath); !slices.Equal(got, want) {
		t.Fatalf("restored %d rows; want %d", len(got), len(want))
	}
	if s := mustRun(t, "databases", "-config", cfg); !strings.Contains(s, "(encrypted, key ") {
		t.Errorf("databases does not say the replica is encrypted:\n%s", s)
	}
	for _, args := range [][]string{{"databases", "-json", "-config", cfg}, {"verify", "-json", "-config", cfg}, {"restore", "-json", "-config", cfg, "-o", out2, dbPath}} {
		_, stdout, stderr := runCLI(t, args...)
		if strings.Contains(stdout+stderr, hexKey) || strings.Contains(stdout+stderr, hexKey[:16]) {
			t.Errorf("%v printed the key", args)
		}
	}
}
