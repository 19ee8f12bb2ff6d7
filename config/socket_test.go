package config

import (
	"io/fs"
	"strings"
	"testing"
)

// The socket section takes Litestream's keys with Litestream's meaning:
// off unless enabled, a default path and mode 0600 unless set, the mode
// written in octal.
func TestSocket(t *testing.T) {
	cfg, err := Parse("t.yml", []byte("dbs: []\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Socket.Enabled || cfg.Socket.SocketPath() != DefaultSocketPath || cfg.Socket.Mode() != 0o600 {
		t.Errorf("no socket section: %+v, %s, %v", cfg.Socket, cfg.Socket.SocketPath(), cfg.Socket.Mode())
	}

	cfg, err = Parse("t.yml", []byte("socket:\n  enabled: true\n  path: /run/app/ws.sock\n  permissions: 0660\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Socket.Enabled || cfg.Socket.SocketPath() != "/run/app/ws.sock" || cfg.Socket.Mode() != fs.FileMode(0o660) || len(cfg.Warnings) != 0 {
		t.Errorf("socket: %+v, mode %v, warnings %v", cfg.Socket, cfg.Socket.Mode(), cfg.Warnings)
	}

	// A path without enabled: true creates nothing, and the file says so.
	cfg, err = Parse("t.yml", []byte("socket:\n  path: /run/ws.sock\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Socket.Enabled || len(cfg.Warnings) != 1 || cfg.Warnings[0].Key != "socket.path" || !strings.Contains(cfg.Warnings[0].Msg, "enabled: true") {
		t.Errorf("path without enabled: %+v, warnings %v", cfg.Socket, cfg.Warnings)
	}

	for _, bad := range []struct{ yaml, want string }{
		{"socket: /run/ws.sock\n", "socket: must be a mapping"},
		{"socket:\n  enabled: yes please\n", "socket.enabled: invalid boolean"},
		{"socket:\n  permissions: rw\n", "socket.permissions: invalid permissions"},
		{"socket:\n  permissions: 1777\n", "socket.permissions: invalid permissions"},
		{"socket:\n  paht: /x\n", `unknown key "paht"`},
	} {
		if _, err := Parse("t.yml", []byte(bad.yaml), false); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.yaml, err, bad.want)
		}
	}
}
