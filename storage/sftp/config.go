package sftp

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/walship/walship/storage"
)

// config is a destination as the operator wrote it, before any file is
// read.
type config struct {
	host     string
	port     int
	user     string
	password string
	// path is the replica directory: absolute, or relative to the login
	// directory; "" is the login directory itself.
	path string

	keyPath    string // private key file; "" means the default identities
	hostKey    string // the host-key setting, unparsed
	knownHosts string // the known-hosts setting; "" means the defaults

	concurrentWrites bool
}

// parseConfig reads a destination from spec: the URL
// sftp://user[:password]@host[:port]/path, overridden by the keys host (which
// may carry :port), user, password and path, plus key-path, host-key,
// known-hosts and concurrent-writes.
func parseConfig(spec storage.Spec) (*config, error) {
	cfg := &config{port: DefaultPort}
	if u := spec.URL; u != nil {
		if u.Scheme != "" && !strings.EqualFold(u.Scheme, Type) {
			return nil, fmt.Errorf("URL scheme %q is not sftp", u.Scheme)
		}
		if u.User != nil {
			cfg.user = u.User.Username()
			cfg.password, _ = u.User.Password()
		}
		cfg.host = u.Hostname()
		if p := u.Port(); p != "" {
			port, err := parsePort(p)
			if err != nil {
				return nil, err
			}
			cfg.port = port
		}
		// In a URL the path is absolute; /~/dir names dir in the login
		// directory, as many SFTP clients accept.
		cfg.path = u.Path
		if cfg.path == "/~" || strings.HasPrefix(cfg.path, "/~/") {
			cfg.path = strings.TrimPrefix(strings.TrimPrefix(cfg.path, "/~"), "/")
		}
	}

	if v := strings.TrimSpace(spec.Keys["host"]); v != "" {
		host, port, err := splitHostPort(v)
		if err != nil {
			return nil, err
		}
		cfg.host = host
		if port != 0 {
			cfg.port = port
		}
	}
	if v := spec.Keys["user"]; v != "" {
		cfg.user = v
	}
	if v := spec.Keys["password"]; v != "" {
		cfg.password = v
	}
	if v := spec.Keys["path"]; v != "" {
		// As written: a path without a leading slash is relative to the
		// login directory, as with Litestream.
		cfg.path = strings.TrimPrefix(v, "~/")
	}
	cfg.path = cleanPath(cfg.path)

	cfg.keyPath = spec.Option("key-path", "key-path", "keyPath")
	cfg.knownHosts = spec.Option("known-hosts", "known-hosts", "knownHosts")
	cfg.hostKey = spec.Keys["host-key"]
	if cfg.hostKey == "" {
		// Read from the raw query so that "+" in a base64 key is not
		// decoded as a space.
		cfg.hostKey = rawQueryParam(spec.URL, "host-key", "hostKey")
	}
	var err error
	if cfg.concurrentWrites, err = spec.BoolOption(true, "concurrent-writes", "concurrent-writes", "concurrentWrites"); err != nil {
		return nil, err
	}

	if cfg.host == "" {
		return nil, errors.New("no host: write the URL as sftp://USER@HOST[:PORT]/PATH or set host:")
	}
	if cfg.user == "" {
		return nil, fmt.Errorf("no user for %s: write the URL as sftp://USER@%s/PATH or set user:", cfg.host, cfg.host)
	}
	return cfg, nil
}

// addr returns host:port.
func (cfg *config) addr() string { return net.JoinHostPort(cfg.host, strconv.Itoa(cfg.port)) }

// String describes the destination as sftp://user@host:port/path, without
// the password. A path relative to the login directory shows as /~/path.
func (cfg *config) String() string {
	p := cfg.path
	if !strings.HasPrefix(p, "/") {
		p = "/~/" + p
	}
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	u := url.URL{Scheme: Type, User: url.User(cfg.user), Host: cfg.addr(), Path: p}
	return u.String()
}

// cleanPath cleans a replica path, keeping it relative or absolute; the
// login directory is "".
func cleanPath(p string) string {
	if p == "" {
		return ""
	}
	p = path.Clean(p)
	if p == "." {
		return ""
	}
	return p
}

func parsePort(s string) (int, error) {
	port, err := strconv.Atoi(s)
	if err != nil || port < 1 || port > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return port, nil
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port"; port is
// 0 when absent.
func splitHostPort(s string) (string, int, error) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		port, err := parsePort(p)
		if err != nil {
			return "", 0, fmt.Errorf("host %q: %w", s, err)
		}
		return h, port, nil
	}
	if strings.Count(s, ":") == 1 {
		return "", 0, fmt.Errorf("host %q is not HOST or HOST:PORT", s)
	}
	return strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), 0, nil
}

// rawQueryParam returns the first of the named query parameters that is set,
// percent-decoded but with "+" kept as is.
func rawQueryParam(u *url.URL, names ...string) string {
	if u == nil {
		return ""
	}
	for _, name := range names {
		for kv := range strings.SplitSeq(u.RawQuery, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if k != name || v == "" {
				continue
			}
			if dec, err := url.PathUnescape(v); err == nil {
				return dec
			}
			return v
		}
	}
	return ""
}

// homeDir returns the home directory of the user running the process.
func homeDir() string {
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return h
	}
	if u, err := user.Current(); err == nil {
		return u.HomeDir
	}
	return ""
}

// expandHome replaces a leading "~/" with the home directory.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home := homeDir(); home != "" {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// defaultIdentities are the private keys OpenSSH tries when none is named.
var defaultIdentities = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

// loadKey reads an unencrypted private key file.
func loadKey(file string) (ssh.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(b)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("%s is protected by a passphrase, which walship cannot ask for: load it into ssh-agent (SSH_AUTH_SOCK) or use a key without one", file)
	} else if err != nil {
		return nil, fmt.Errorf("%s is not a private key in OpenSSH or PEM format: %w", file, err)
	}
	return signer, nil
}

// loadSigners returns the private keys to log in with: the key-path file,
// or else those of the default identity files (~/.ssh/id_ed25519, id_ecdsa,
// id_rsa) that exist and have no passphrase.
func loadSigners(keyPath string) ([]ssh.Signer, error) {
	if keyPath != "" {
		s, err := loadKey(expandHome(keyPath))
		if err != nil {
			return nil, fmt.Errorf("key-path: %w", err)
		}
		return []ssh.Signer{s}, nil
	}
	home := homeDir()
	if home == "" {
		return nil, nil
	}
	var signers []ssh.Signer
	for _, name := range defaultIdentities {
		if s, err := loadKey(filepath.Join(home, ".ssh", name)); err == nil {
			signers = append(signers, s)
		}
	}
	return signers, nil
}
