// Package contrib_test checks the files that run walship as a service: the
// systemd unit, the Dockerfile and the deployment examples.
package contrib_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitKeys returns the unit file's settings, key to values.
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is no setting", path, line)
		}
		keys[k] = append(keys[k], v)
	}
	return keys
}

// TestSystemdUnit: the unit has what the README promises, and systemd
// itself accepts it where systemd-analyze is installed.
func TestSystemdUnit(t *testing.T) {
	const unit = "systemd/walship.service"
	keys := unitKeys(t, unit)
	for k, want := range map[string]string{
		"Type":            "notify",
		"ExecStart":       "/usr/local/bin/walship replicate -config /etc/walship.yml",
		"User":            "walship",
		"Restart":         "on-failure",
		"ProtectSystem":   "strict",
		"ProtectHome":     "true",
		"PrivateTmp":      "true",
		"NoNewPrivileges": "true",
	} {
		if got := keys[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"WatchdogSec", "ReadWritePaths"} {
		if len(keys[k]) == 0 {
			t.Errorf("%s is not set", k)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	// verify checks that ExecStart's program exists: point it at one that
	// does.
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "walship.service")
	if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/walship", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", tmp).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
