package config

import (
	"slices"
	"strings"
	"testing"
)

// TestEncryption: a replica's encryption keys, on the replica or at the
// top level for every replica; contradictions and bad keys are errors that
// never show the key.
func TestEncryption(t *testing.T) {
	const hexKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	t.Setenv("WALSHIP_TEST_KEY", hexKey)
	t.Setenv("WALSHIP_TEST_UNSET", "")
	parse := func(top, replica string) (*Config, error) {
		return Parse("walship.yml", []byte(top+"dbs:\n  - path: /tmp/a.db\n    replicas:\n      - url: file:///backups/a\n"+replica+"      - url: file:///backups/b\n        encryption-key-path: /etc/b.key\n"), true)
	}

	cfg, err := parse("", "        encryption-key-path: /etc/a.key\n        encryption-old-key-paths: [/etc/a.old, /etc/a.older]\n")
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.DBs[0].Replicas[0], cfg.DBs[0].Replicas[1]
	if a.EncryptionKeyPath != "/etc/a.key" || !slices.Equal(a.EncryptionOldKeyPaths, []string{"/etc/a.old", "/etc/a.older"}) || b.EncryptionKeyPath != "/etc/b.key" || b.EncryptionOldKeyPaths != nil {
		t.Fatalf("replicas: %+v, %+v", a, b)
	}

	cfg, err = parse("encryption-key: ${WALSHIP_TEST_KEY}\n", "")
	if err != nil {
		t.Fatal(err)
	}
	a, b = cfg.DBs[0].Replicas[0], cfg.DBs[0].Replicas[1]
	if a.EncryptionKey == nil || a.EncryptionKey[31] != 0x1f || b.EncryptionKey != nil || b.EncryptionKeyPath != "/etc/b.key" {
		t.Fatalf("the top level's key is not the default of the replica that sets none: %+v, %+v", a, b)
	}
	if strings.Contains(a.EncryptionKey.String(), hexKey) || strings.Contains(strings.ToLower(a.EncryptionKey.GoString()), "0102") {
		t.Fatal("a key prints")
	}

	for _, tc := range []struct{ top, replica, want string }{
		{"", "        encryption-key: ${WALSHIP_TEST_KEY}\n        encryption-key-path: /etc/a.key\n", "set only one"},
		{"", "        encryption-old-key-paths: /etc/a.old\n", "without encryption-key-path"},
		{"", "        encryption-key: ${WALSHIP_TEST_UNSET}\n", "that variable is unset"},
		{"", "        encryption-key: " + hexKey[:40] + "\n", "64 hexadecimal characters"},
		{"encryption-key: nothex\n", "", "64 hexadecimal characters"},
		{"", "        encryption-key-paths: /etc/a.key\n", "encryption-key-path"},
		{"encryption-key-path: /etc/k\n", "        litestream-compatible: true\n", "Litestream cannot read encrypted files"},
	} {
		_, err := parse(tc.top, tc.replica)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q%q: %v; want an error saying %q", tc.top, tc.replica, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), hexKey[:40]) {
			t.Errorf("the error shows the key: %v", err)
		}
	}
}
