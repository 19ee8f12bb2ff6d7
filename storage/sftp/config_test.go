package sftp

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/walship/walship/storage"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		url  string
		keys map[string]string
		want config
		desc string // String()
	}{
		{
			url:  "sftp://alice@backup.example.com/srv/backups/app",
			want: config{host: "backup.example.com", port: 22, user: "alice", path: "/srv/backups/app", concurrentWrites: true},
			desc: "sftp://alice@backup.example.com:22/srv/backups/app",
		},
		{
			url:  "sftp://alice:s3cret@10.0.0.5:2222/app/",
			want: config{host: "10.0.0.5", port: 2222, user: "alice", password: "s3cret", path: "/app", concurrentWrites: true},
			desc: "sftp://alice@10.0.0.5:2222/app",
		},
		{
			url:  "sftp://bob@[::1]:2200/data",
			want: config{host: "::1", port: 2200, user: "bob", path: "/data", concurrentWrites: true},
			desc: "sftp://bob@[::1]:2200/data",
		},
		{
			// /~/ is relative to the login directory.
			url:  "sftp://alice@host/~/backups/app",
			want: config{host: "host", port: 22, user: "alice", path: "backups/app", concurrentWrites: true},
			desc: "sftp://alice@host:22/~/backups/app",
		},
		{
			url:  "sftp://alice@host",
			want: config{host: "host", port: 22, user: "alice", concurrentWrites: true},
			desc: "sftp://alice@host:22/~",
		},
		{
			// Keys override the URL; host may carry a port.
			url: "sftp://alice:old@host/a",
			keys: map[string]string{"host": "other.example.com:2022", "user": "carol", "password": "new", "path": "relative/dir",
				"key-path": "/etc/walship/id_ed25519", "host-key": "ssh-ed25519 AAAA", "known-hosts": "/etc/walship/known_hosts", "concurrent-writes": "false"},
			want: config{host: "other.example.com", port: 2022, user: "carol", password: "new", path: "relative/dir",
				keyPath: "/etc/walship/id_ed25519", hostKey: "ssh-ed25519 AAAA", knownHosts: "/etc/walship/known_hosts"},
			desc: "sftp://carol@other.example.com:2022/~/relative/dir",
		},
		{
			// The form cmd/walship builds from type: sftp, host:, user:, path:.
			url:  "sftp://host.example.com:2022/backups",
			keys: map[string]string{"user": "dave", "host": "host.example.com:2022"},
			want: config{host: "host.example.com", port: 2022, user: "dave", path: "/backups", concurrentWrites: true},
			desc: "sftp://dave@host.example.com:2022/backups",
		},
		{
			url:  "sftp://alice@host/a?key-path=/k&known-hosts=/kh&host-key=ssh-ed25519+AAAAC3Nza%2B/x",
			want: config{host: "host", port: 22, user: "alice", path: "/a", keyPath: "/k", knownHosts: "/kh", hostKey: "ssh-ed25519+AAAAC3Nza+/x", concurrentWrites: true},
			desc: "sftp://alice@host:22/a",
		},
		{
			url:  "sftp://alice@host/",
			keys: map[string]string{"host": "[fe80::1]"},
			want: config{host: "fe80::1", port: 22, user: "alice", path: "/", concurrentWrites: true},
			desc: "sftp://alice@[fe80::1]:22/",
		},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			cfg, err := parseConfig(storage.Spec{URL: mustURL(t, tt.url), Keys: tt.keys})
			if err != nil {
				t.Fatal(err)
			}
			if *cfg != tt.want {
				t.Fatalf("parsed\n%+v\nwant\n%+v", *cfg, tt.want)
			}
			if got := cfg.String(); got != tt.desc {
				t.Fatalf("String() = %q; want %q", got, tt.desc)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		url  string
		keys map[string]string
		want string
	}{
		{"sftp:///backups", nil, "no host"},
		{"sftp://host/backups", nil, "no user for host"},
		{"sftp://alice@host:0/a", nil, "port \"0\""},
		{"sftp://alice@host:99999/a", nil, "port \"99999\""},
		{"sftp://alice@host/a", map[string]string{"host": "h:x"}, "port \"x\""},
		{"s3://alice@host/a", nil, "not sftp"},
		{"sftp://alice@host/a", map[string]string{"concurrent-writes": "maybe"}, "concurrent-writes"},
	}
	for _, tt := range tests {
		_, err := parseConfig(storage.Spec{URL: mustURL(t, tt.url), Keys: tt.keys})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %v: error %v; want one mentioning %q", tt.url, tt.keys, err, tt.want)
		}
	}
}

func TestLevelPaths(t *testing.T) {
	for _, tt := range []struct{ url, dir string }{
		{"sftp://a@h/srv/app", "/srv/app/ltx/9"},
		{"sftp://a@h/~/app", "app/ltx/9"},
		{"sftp://a@h", "ltx/9"},
		{"sftp://a@h/", "/ltx/9"},
	} {
		c, err := Open(context.Background(), storage.Spec{URL: mustURL(t, tt.url), Keys: map[string]string{"password": "x", "host-key": testHostKeyLine(t)}})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.LevelDir(9); got != tt.dir {
			t.Errorf("%s: level 9 in %q; want %q", tt.url, got, tt.dir)
		}
		if got, want := c.LTXFilePath(9, 1, 0x2f), tt.dir+"/0000000000000001-000000000000002f.ltx"; got != want {
			t.Errorf("%s: file at %q; want %q", tt.url, got, want)
		}
	}
}

func TestParseHostKeys(t *testing.T) {
	pub := newPublicKey(t)
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	fp := ssh.FingerprintSHA256(pub)

	keys, fps, err := parseHostKeys(line + " root@server\n\n# comment\n[host]:2222 " + line + "\n" + fp + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || len(fps) != 1 || fps[0] != fp {
		t.Fatalf("parsed %d keys and fingerprints %v", len(keys), fps)
	}
	for _, k := range keys {
		if ssh.FingerprintSHA256(k) != fp {
			t.Fatalf("parsed key %s; want %s", ssh.FingerprintSHA256(k), fp)
		}
	}
	for _, bad := range []string{"ssh-ed25519 notbase64!", "hello", " \n "} {
		if _, _, err := parseHostKeys(bad); err == nil || !strings.Contains(err.Error(), "host-key") {
			t.Errorf("host-key %q: error %v; want one about host-key", bad, err)
		}
	}
}

func TestOpenCredentials(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	hostKey := testHostKeyLine(t)
	open := func(keys map[string]string) (*Client, error) {
		keys["host-key"] = hostKey
		return Open(context.Background(), storage.Spec{URL: mustURL(t, "sftp://alice@host/a"), Keys: keys})
	}

	if _, err := open(map[string]string{}); err == nil || !strings.Contains(err.Error(), "no credentials") || !strings.Contains(err.Error(), "key-path") {
		t.Fatalf("no credentials: %v; want an error that says to set key-path", err)
	}
	if _, err := open(map[string]string{"key-path": filepath.Join(home, "missing")}); err == nil || !strings.Contains(err.Error(), "key-path") {
		t.Fatalf("missing key file: %v", err)
	}
	notKey := filepath.Join(home, "notkey")
	os.WriteFile(notKey, []byte("hello"), 0o600)
	if _, err := open(map[string]string{"key-path": notKey}); err == nil || !strings.Contains(err.Error(), "not a private key") {
		t.Fatalf("not a key: %v", err)
	}

	// A key with a passphrase cannot be used; the error says what to do.
	encrypted := filepath.Join(home, "encrypted")
	os.WriteFile(encrypted, []byte(encryptedKey), 0o600)
	if _, err := open(map[string]string{"key-path": encrypted}); err == nil || !strings.Contains(err.Error(), "passphrase") || !strings.Contains(err.Error(), "ssh-agent") {
		t.Fatalf("encrypted key: %v", err)
	}

	// key-path may start with ~/; default identities are found in ~/.ssh.
	os.Mkdir(filepath.Join(home, ".ssh"), 0o700)
	writeKey(t, filepath.Join(home, ".ssh", "id_ed25519"))
	c, err := open(map[string]string{"key-path": "~/.ssh/id_ed25519"})
	if err != nil || len(c.signers) != 1 {
		t.Fatalf("key-path ~/.ssh/id_ed25519: %v", err)
	}
	c, err = open(map[string]string{})
	if err != nil || len(c.signers) != 1 {
		t.Fatalf("default identity ~/.ssh/id_ed25519: %v", err)
	}
	methods, names, cleanup := c.authMethods()
	cleanup()
	if len(methods) != 1 || len(names) != 1 || !strings.Contains(names[0], "default keys") {
		t.Fatalf("auth methods with a default key: %d, %v", len(methods), names)
	}

	// A password adds password and keyboard-interactive logins.
	c, err = open(map[string]string{"password": "pw"})
	if err != nil {
		t.Fatal(err)
	}
	methods, names, cleanup = c.authMethods()
	cleanup()
	if len(methods) != 3 || names[len(names)-1] != "password" {
		t.Fatalf("auth methods with a key and a password: %d, %v", len(methods), names)
	}
}

// TestPasswordLogin logs in with a password, answered to a password request
// and to a keyboard-interactive prompt, against an SSH server in the test
// (OpenSSH in the tests allows no password logins).
func TestPasswordLogin(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // no default keys
	t.Setenv("SSH_AUTH_SOCK", "")
	const password = "correct horse battery"
	for _, kind := range []string{"password", "keyboard-interactive"} {
		t.Run(kind, func(t *testing.T) {
			hostSigner := newSigner(t)
			check := func(user, answer string) error {
				if user == "alice" && answer == password {
					return nil
				}
				return fmt.Errorf("wrong password")
			}
			server := &ssh.ServerConfig{}
			if kind == "password" {
				server.PasswordCallback = func(m ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
					return nil, check(m.User(), string(pw))
				}
			} else {
				server.KeyboardInteractiveCallback = func(m ssh.ConnMetadata, challenge ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
					answers, err := challenge("", "", []string{"Password: "}, []bool{false})
					if err != nil {
						return nil, err
					}
					return nil, check(m.User(), answers[0])
				}
			}
			server.AddHostKey(hostSigner)
			hostKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostSigner.PublicKey())))

			for _, pw := range []string{password, "wrong-" + password} {
				u := &url.URL{Scheme: "sftp", User: url.UserPassword("alice", pw), Host: "127.0.0.1:2222", Path: "/a"}
				c, err := Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"host-key": hostKey}})
				if err != nil {
					t.Fatal(err)
				}
				client, err := handshakeWith(t, c, server)
				if pw == password {
					if err != nil {
						t.Fatalf("log in with the right password: %v", err)
					}
					client.Close()
					continue
				}
				if err == nil {
					t.Fatal("logged in with a wrong password")
				}
				if !strings.Contains(err.Error(), `as "alice" with password`) || strings.Contains(err.Error(), pw) {
					t.Fatalf("wrong password: error %q should say how the login failed, without the password", err)
				}
				if retryable(err) {
					t.Fatalf("a refused login is retried: %v", err)
				}
			}
		})
	}
}

// handshakeWith runs c's SSH handshake against an in-test server over TCP.
func handshakeWith(t *testing.T, c *Client, server *ssh.ServerConfig) (*ssh.Client, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		sc, chans, reqs, err := ssh.NewServerConn(nc, server)
		if err != nil {
			return
		}
		go ssh.DiscardRequests(reqs)
		for ch := range chans {
			ch.Reject(ssh.Prohibited, "no channels")
		}
		sc.Close()
	}()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client, err := c.sshHandshake(nc)
	if err != nil {
		nc.Close()
	}
	return client, err
}

func TestSource(t *testing.T) {
	// A seekable reader is rewound to where the upload began.
	f, err := os.CreateTemp(t.TempDir(), "src")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("headerDATA")
	f.Seek(6, 0)
	s := newSource(f)
	buf := make([]byte, 10)
	n, _ := s.Read(buf)
	if string(buf[:n]) != "DATA" || !s.canRewind() {
		t.Fatalf("read %q, can rewind %v", buf[:n], s.canRewind())
	}
	if err := s.rewind(); err != nil {
		t.Fatal(err)
	}
	n, _ = s.Read(buf)
	if string(buf[:n]) != "DATA" {
		t.Fatalf("after rewinding, read %q; want DATA", buf[:n])
	}

	// Another reader can be retried only before it is read.
	s = newSource(strings.NewReader("abc"))
	if !s.canRewind() || s.rewind() != nil {
		t.Fatal("an unread source cannot be retried")
	}
	s = newSource(io.MultiReader(strings.NewReader("abc")))
	s.Read(buf)
	if s.canRewind() || s.rewind() == nil {
		t.Fatal("a read, unseekable source claims it can be read again")
	}
}

func TestTempNames(t *testing.T) {
	now := time.Now()
	name := storage.TempName("0000000000000001-0000000000000001.ltx", now)
	if !storage.IsTempName(name) || storage.IsStaleTemp(name, now) {
		t.Fatalf("%q: temp %v, stale %v", name, storage.IsTempName(name), storage.IsStaleTemp(name, now))
	}
	if _, _, ok := storage.ParseFileName(name); ok {
		t.Fatalf("temp name %q parses as an LTX file name", name)
	}
	if !storage.IsStaleTemp(name, now.Add(25*time.Hour)) {
		t.Fatalf("%q is not stale a day later", name)
	}
	for _, n := range []string{"0000000000000001-0000000000000001.ltx", ".hidden", ".x.tmp-abc"} {
		if storage.IsTempName(n) && storage.IsStaleTemp(n, now) {
			t.Errorf("%q taken for a stale temp file", n)
		}
	}
}

// helpers

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newPublicKey(t *testing.T) ssh.PublicKey { return newSigner(t).PublicKey() }

// testHostKeyLine returns a random host key as an authorized_keys line.
func testHostKeyLine(t *testing.T) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newPublicKey(t))))
}

// writeKey writes a new private key without passphrase to path.
func writeKey(t *testing.T, path string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// encryptedKey is a throwaway ed25519 key protected by the passphrase
// "pass" (ssh-keygen -t ed25519 -N pass).
const encryptedKey = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABCQL+fAcO
29raq5LaFl+YcYAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAICObyeJnLTwVHFvf
tFilOE1/JuBuPv4t0b9TzaNKUNAVAAAAkGfs9vNshnzkS13L2Jq5xDiIMWVTRcpdgAj4hE
73xQ+Gn1T8T9iXEN79uIOJ1JBmxHwQrvHYbSEaGLy4paP4rA44rifUvKYaUj8m+7ZAwAAt
D/hCQf7WQudsGDGuFfUFqBwSFBHXtkDk8km7XRHW8UkWWr0H9PviYYR3pLk4lHP60TwCRv
Ysqgy48FF0OSz1Og==
-----END OPENSSH PRIVATE KEY-----
`
