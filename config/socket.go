package config

import (
	"io/fs"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultSocketPath is where the control socket listens when the file
// enables it without a path. Litestream's default is
// /var/run/litestream.sock; walship's has its own name, so that both can
// run on one machine while a move from one to the other is tested.
const DefaultSocketPath = "/var/run/walship.sock"

// DefaultSocketPermissions is the socket's mode unless the file sets one:
// only its owner (and root) may connect.
const DefaultSocketPermissions = 0o600

// Socket is the "socket" mapping, Litestream's keys with Litestream's
// meaning: `walship replicate` listens for control commands (walship sync,
// list, info) on a Unix socket when Enabled.
type Socket struct {
	// Enabled is "enabled": the socket exists only when it is true.
	Enabled bool `yaml:"enabled"`
	// Path is "path", absolute; empty when unset (see [Socket.SocketPath]).
	Path string `yaml:"path"`
	// Permissions is "permissions", the socket file's mode (0 to 0777,
	// written in octal: 0600); nil when unset (see [Socket.Mode]).
	Permissions *uint32 `yaml:"permissions"`
}

// socketKeys are the keys of the "socket" mapping.
var socketKeys = []string{"enabled", "path", "permissions"}

// socket parses the "socket" mapping.
func (p *parser) socket(kv pair, s *Socket) {
	if isNull(kv.val) {
		return
	}
	if kv.val.Kind != yaml.MappingNode {
		p.errorf(kv.line, "%s: must be a mapping with keys enabled:, path: and permissions: (e.g. \"enabled: true\"), not %s", kv.path, kindName(kv.val))
		return
	}
	var path *pair
	for _, e := range p.pairs(kv.val, kv.path) {
		switch e.key {
		case "enabled":
			s.Enabled = p.boolean(e)
		case "path":
			path = &e
			if v := strings.TrimSpace(p.str(e)); v != "" {
				s.Path = p.localPath(e, v) // "~" expanded, made absolute, as a database's path
			}
		case "permissions":
			if isNull(e.val) {
				continue
			}
			var mode uint32
			if e.val.Kind != yaml.ScalarNode || e.val.ShortTag() != "!!int" || e.val.Decode(&mode) != nil || mode > 0o777 {
				p.errorf(e.line, "%s: invalid permissions %s (a file mode in octal with a leading 0, e.g. 0600)", e.path, show(e.key, e.val.Value))
				continue
			}
			s.Permissions = &mode
		default:
			p.unknown(e, kv.path, socketKeys, "", nil)
		}
	}
	if !s.Enabled && path != nil {
		p.warnf(path.line, path.path, "has no effect while socket.enabled is not true: walship replicate creates no control socket; add \"enabled: true\" to create it")
	}
}

// SocketPath returns the socket's path: Path, else DefaultSocketPath.
func (s Socket) SocketPath() string {
	if s.Path == "" {
		return DefaultSocketPath
	}
	return s.Path
}

// Mode returns the socket file's mode: Permissions, else
// DefaultSocketPermissions.
func (s Socket) Mode() fs.FileMode {
	if s.Permissions == nil {
		return DefaultSocketPermissions
	}
	return fs.FileMode(*s.Permissions)
}
