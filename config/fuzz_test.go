package config

import (
	"strings"
	"testing"
)

// FuzzParse: no config file makes the parser panic or hang, and every
// rejection names the file.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"dbs:\n  - path: /a.db\n    replica:\n      url: s3://b/p\n      region: eu\n",
		"levels:\n  - interval: 30s\n  - interval: 5m\nsnapshot:\n  interval: 24h\nmax-local-bytes: 1GiB\n",
		"base: &b\n  sync-interval: 1s\ndbs:\n  - <<: *b\n    path: /x.db\n    replicas:\n      - path: /r\n",
		"dbs:\n\t- path: /a.db\n", "---\na: 1\n---\nb: 2\n", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := Parse("fuzz.yml", data, false); err != nil && !strings.HasPrefix(err.Error(), "fuzz.yml") {
			t.Fatalf("the error does not name the file: %v", err)
		}
	})
}
