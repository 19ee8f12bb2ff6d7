package sftp

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys decides which server keys a client accepts. With host-key set,
// only the keys (or SHA256 fingerprints) it lists; otherwise the keys that
// known_hosts files list for the host. Anything else is refused: a replica
// never talks to a server it cannot identify.
type hostKeys struct {
	keys         []ssh.PublicKey // from host-key
	fingerprints []string        // "SHA256:..." from host-key

	// knownHosts are the known_hosts files checked when host-key is not
	// set; explicit is true when the operator named them (known-hosts:),
	// false for the defaults, which may be missing.
	knownHosts []string
	explicit   bool
}

// fixed reports whether host-key is set.
func (h *hostKeys) fixed() bool { return len(h.keys) > 0 || len(h.fingerprints) > 0 }

// parseHostKeys parses the host-key setting: one or more lines, each a
// public key as in authorized_keys ("ssh-ed25519 AAAA... [comment]"), a
// known_hosts line ("host ssh-ed25519 AAAA..."), as ssh-keyscan prints it,
// or a SHA256 fingerprint ("SHA256:..."), as ssh-keygen -l prints it.
func parseHostKeys(s string) (keys []ssh.PublicKey, fingerprints []string, err error) {
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "SHA256:") && !strings.ContainsAny(line, " \t") {
			fingerprints = append(fingerprints, line)
			continue
		}
		if key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
			keys = append(keys, key)
			continue
		}
		if _, _, key, _, _, err := ssh.ParseKnownHosts([]byte(line)); err == nil {
			keys = append(keys, key)
			continue
		}
		return nil, nil, fmt.Errorf("host-key: %q is not a public key: write the server's key as \"ssh-ed25519 AAAA...\" (the contents of /etc/ssh/ssh_host_ed25519_key.pub on the server, or a line of ssh-keyscan HOST) or its fingerprint \"SHA256:...\"", line)
	}
	if len(keys) == 0 && len(fingerprints) == 0 {
		return nil, nil, errors.New("host-key is empty: write the server's key as \"ssh-ed25519 AAAA...\"")
	}
	return keys, fingerprints, nil
}

// defaultKnownHosts returns the files OpenSSH checks by default.
func defaultKnownHosts() []string {
	var files []string
	if home := homeDir(); home != "" {
		files = append(files, filepath.Join(home, ".ssh", "known_hosts"))
	}
	return append(files, "/etc/ssh/ssh_known_hosts")
}

// callback returns the host key callback for a connection to addr
// (host:port), and the host key algorithms to ask the server for: those of
// the keys we know, so that a server with several host keys presents one we
// can check. Known_hosts files are read now, so edits take effect on the
// next connection.
func (h *hostKeys) callback(addr string) (ssh.HostKeyCallback, []string, error) {
	if h.fixed() {
		source := "host-key"
		var want []string
		for _, k := range h.keys {
			want = append(want, k.Type()+" "+ssh.FingerprintSHA256(k))
		}
		want = append(want, h.fingerprints...)
		cb := func(_ string, _ net.Addr, key ssh.PublicKey) error {
			for _, k := range h.keys {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil
				}
			}
			if slices.Contains(h.fingerprints, ssh.FingerprintSHA256(key)) {
				return nil
			}
			return &HostKeyError{Addr: addr, Key: key, Source: source, Want: want}
		}
		var algos []string
		if len(h.fingerprints) == 0 {
			var types []string
			for _, k := range h.keys {
				types = append(types, k.Type())
			}
			algos = hostKeyAlgorithms(types)
		}
		return cb, algos, nil
	}

	var files, missing []string
	for _, f := range h.knownHosts {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) && !h.explicit {
			missing = append(missing, f)
			continue
		} else if err != nil {
			return nil, nil, fmt.Errorf("known-hosts: %w", err)
		}
		files = append(files, f)
	}
	source := "known_hosts " + strings.Join(files, ", ")
	if len(files) == 0 {
		source = "known_hosts (" + strings.Join(missing, " and ") + " do not exist)"
	}
	check := func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }
	if len(files) > 0 {
		cb, err := knownhosts.New(files...)
		if err != nil {
			return nil, nil, fmt.Errorf("known-hosts: %w", err)
		}
		check = cb
	}
	firstFile := h.knownHosts[0]
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		if err == nil {
			return nil
		}
		e := &HostKeyError{Addr: addr, Key: key, Source: source, KnownHosts: firstFile}
		var keyErr *knownhosts.KeyError
		var revoked *knownhosts.RevokedError
		switch {
		case errors.As(err, &keyErr):
			for _, k := range keyErr.Want {
				e.Want = append(e.Want, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
			}
		case errors.As(err, &revoked):
			e.Revoked = true
		default:
			return err
		}
		return e
	}
	return cb, knownAlgorithms(check, addr), nil
}

// knownAlgorithms asks a known_hosts callback which key types it holds for
// addr, by offering it a key it cannot know.
func knownAlgorithms(check ssh.HostKeyCallback, addr string) []string {
	probe, _ := ssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	var keyErr *knownhosts.KeyError
	if err := check(addr, &net.TCPAddr{IP: net.IPv4zero}, probe); !errors.As(err, &keyErr) || len(keyErr.Want) == 0 {
		return nil // unknown host: let the server choose; the check refuses it anyway
	}
	var types []string
	for _, k := range keyErr.Want {
		types = append(types, k.Key.Type())
	}
	return hostKeyAlgorithms(types)
}

// hostKeyAlgorithms maps key types to the host key algorithms that use them
// (an RSA key signs with rsa-sha2-512 or rsa-sha2-256), keeping those this
// SSH implementation supports.
func hostKeyAlgorithms(types []string) []string {
	supported := append(ssh.SupportedAlgorithms().HostKeys, ssh.InsecureAlgorithms().HostKeys...)
	var algos []string
	add := func(a string) {
		if slices.Contains(supported, a) && !slices.Contains(algos, a) {
			algos = append(algos, a)
		}
	}
	for _, t := range types {
		if t == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
		}
		add(t)
	}
	return algos
}

// HostKeyError is the error of a connection refused because the server's
// host key is not the expected one, or not known at all.
type HostKeyError struct {
	Addr    string        // host:port dialled
	Key     ssh.PublicKey // the key the server presented
	Source  string        // what was checked: "host-key" or "known_hosts <files>"
	Want    []string      // the keys expected; empty when the host is unknown
	Revoked bool          // the key is marked @revoked in known_hosts

	// KnownHosts is the known_hosts file to add the server to, when
	// known_hosts files were checked.
	KnownHosts string
}

func (e *HostKeyError) Error() string {
	offered := e.Key.Type() + " " + ssh.FingerprintSHA256(e.Key)
	switch {
	case e.Revoked:
		return fmt.Sprintf("the host key of %s (%s) is marked as revoked in %s: refusing to connect", e.Addr, offered, e.Source)
	case len(e.Want) > 0:
		fix := "if the server's key was changed on purpose, set host-key: to its new key"
		if e.KnownHosts != "" {
			host := knownhosts.Normalize(e.Addr)
			if strings.HasPrefix(host, "[") {
				host = "'" + host + "'" // for the shell
			}
			fix = fmt.Sprintf("if the server's key was changed on purpose, remove the old entry (ssh-keygen -R %s -f %s) and add the new one", host, e.KnownHosts)
		}
		return fmt.Sprintf("HOST KEY MISMATCH for %s: the server presented %s, but %s expects %s; someone may be intercepting the connection, so it was refused; %s",
			e.Addr, offered, e.Source, strings.Join(e.Want, " or "), fix)
	default:
		host, port, _ := net.SplitHostPort(e.Addr)
		scan := "ssh-keyscan " + host
		if port != "" && port != "22" {
			scan = "ssh-keyscan -p " + port + " " + host
		}
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(e.Key)))
		where := "to known_hosts"
		if e.KnownHosts != "" {
			where = "to " + e.KnownHosts
			scan += " >> " + e.KnownHosts
		}
		return fmt.Sprintf("the host key of %s is unknown (%s; checked %s), so the connection was refused; if %s is the server's key (check with ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub on the server), set on the replica: host-key: %s (or add it %s: %s)",
			e.Addr, offered, e.Source, ssh.FingerprintSHA256(e.Key), keyFileType(e.Key.Type()), line, where, scan)
	}
}

// keyFileType names the host key file OpenSSH keeps a key type in.
func keyFileType(t string) string {
	switch {
	case t == ssh.KeyAlgoED25519:
		return "ed25519"
	case strings.HasPrefix(t, "ecdsa-"):
		return "ecdsa"
	case t == ssh.KeyAlgoRSA:
		return "rsa"
	default:
		return "*"
	}
}
