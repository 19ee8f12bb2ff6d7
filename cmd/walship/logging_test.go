package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/walship/walship/config"
)

// TestLogSettings: the config file's logging: section as Litestream reads
// it: level (trace is debug), type text or json, stderr (unset or true:
// standard error; false: standard output), and LOG_LEVEL over the file.
func TestLogSettings(t *testing.T) {
	no, yes := false, true
	for _, tc := range []struct {
		name           string
		logging        config.Logging
		env            string
		wantOut        string // "stdout" or "stderr"
		wantJSON       bool
		debugShown     bool
		infoSuppressed bool
	}{
		{"defaults", config.Logging{}, "", "stderr", false, false, false},
		{"json to stdout", config.Logging{Type: "json", Stderr: &no}, "", "stdout", true, false, false},
		{"stderr true", config.Logging{Stderr: &yes, Level: "trace"}, "", "stderr", false, true, false},
		{"LOG_LEVEL wins", config.Logging{Level: "debug"}, "warn", "stderr", false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, note := configLogSettings(tc.logging, "", tc.env)
			if note != "" {
				t.Fatal(note)
			}
			var stdout, stderr bytes.Buffer
			log, err := newLogger(&env{stdout: &stdout, stderr: &stderr}, s)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("a debug line", "db", "/a.db")
			log.Info("an info line", "db", "/a.db")
			out, other := stderr.String(), stdout.String()
			if tc.wantOut == "stdout" {
				out, other = other, out
			}
			if other != "" {
				t.Fatalf("logged to the other stream: %q", other)
			}
			if got := strings.Contains(out, "a debug line"); got != tc.debugShown {
				t.Errorf("debug shown: %v\n%s", got, out)
			}
			if got := !strings.Contains(out, "an info line"); got != tc.infoSuppressed {
				t.Errorf("info suppressed: %v\n%s", got, out)
			}
			if tc.wantJSON {
				var rec map[string]any
				if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &rec); err != nil || rec["db"] != "/a.db" {
					t.Errorf("not a JSON line with the db: %q (%v)", out, err)
				}
			}
		})
	}
	if _, err := newLogger(&env{}, logSettings{format: "xml"}); err == nil {
		t.Error("logging.type xml accepted")
	}
}
