package testserver

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHServer is a running OpenSSH server (Debian's /usr/sbin/sshd) that
// serves SFTP on 127.0.0.1 to the current user, who logs in with the
// client key at KeyPath.
type SSHServer struct {
	Host    string // 127.0.0.1
	Port    int
	User    string // the user the tests run as
	KeyPath string // the client's private key (OpenSSH format, no passphrase)

	// HostKey is the server's public key as an authorized_keys line
	// ("ssh-ed25519 AAAA..."), what a replica's host-key setting holds.
	HostKey string

	// Process is the sshd listener; every session runs in a child of it.
	Process *Process
}

// sshdPath is Debian's OpenSSH server. sshd re-executes itself for every
// connection, so it must be started by its full path.
const sshdPath = "/usr/sbin/sshd"

// SSHD starts an OpenSSH server on a free port of 127.0.0.1 with its own
// host key, sshd_config and authorized_keys in a temporary directory. The
// current user may log in with the key at KeyPath (and, when root, only with
// a key: PermitRootLogin prohibit-password). SFTP is served by internal-sftp
// over the real file system, so Dir gives each test a fresh directory.
func SSHD(t testing.TB) *SSHServer {
	t.Helper()
	if fi, err := os.Stat(sshdPath); err != nil || fi.IsDir() {
		t.Fatalf("test server sshd is not installed at %s (Debian package openssh-server); run scripts/install-test-servers", sshdPath)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sshd: current user: %v", err)
	}
	// sshd refuses to start without its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshd: create privilege separation directory /run/sshd: %v", err)
	}

	dir := t.TempDir()
	hostKeyPath := filepath.Join(dir, "ssh_host_ed25519_key")
	hostPub := writeSSHKey(t, hostKeyPath, "walship-test-host")
	clientKeyPath := filepath.Join(dir, "id_ed25519")
	clientPub := writeSSHKey(t, clientKeyPath, "walship-test-client")
	authorizedKeys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorizedKeys, ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		t.Fatal(err)
	}

	rootLogin := "no"
	if u.Uid == "0" {
		rootLogin = "prohibit-password"
	}
	config := filepath.Join(dir, "sshd_config")
	conf := strings.Join([]string{
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKeyPath,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + authorizedKeys,
		"AllowUsers " + u.Username,
		"PermitRootLogin " + rootLogin,
		"StrictModes no",
		"UsePAM no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication yes", // no user has a password here; lets tests send one
		"KbdInteractiveAuthentication no",
		"AllowTcpForwarding no",
		"X11Forwarding no",
		"MaxStartups 200",
		"MaxSessions 200",
		"LogLevel VERBOSE",
		"Subsystem sftp internal-sftp",
		"",
	}, "\n")
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	port := FreePort(t)
	addr := Addr(port)
	p := Start(t, Config{
		Name:  "sshd",
		Path:  sshdPath,
		Args:  []string{"-D", "-e", "-f", config, "-p", strconv.Itoa(port)},
		Dir:   dir,
		Ready: sshBannerReady(addr),
	})
	return &SSHServer{
		Host:    "127.0.0.1",
		Port:    port,
		User:    u.Username,
		KeyPath: clientKeyPath,
		HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostPub))),
		Process: p,
	}
}

// Addr returns host:port.
func (s *SSHServer) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// KnownHostsLine returns the server's entry for a known_hosts file:
// "[127.0.0.1]:port ssh-ed25519 AAAA...".
func (s *SSHServer) KnownHostsLine() string {
	return fmt.Sprintf("[%s]:%d %s", s.Host, s.Port, s.HostKey)
}

// Dir returns a new empty directory that the server's user can write, for
// one test.
func (s *SSHServer) Dir(t testing.TB) string {
	t.Helper()
	return t.TempDir()
}

// Signal sends sig to every session process of the server (the children of
// the listener and theirs), not to the listener itself: SIGKILL breaks every
// open connection, SIGSTOP makes them hang, SIGCONT resumes them. It returns
// how many processes it signalled.
func (s *SSHServer) Signal(t testing.TB, sig syscall.Signal) int {
	t.Helper()
	pids := descendants(t, s.Process.Cmd.Process.Pid)
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && err != syscall.ESRCH {
			t.Fatalf("sshd: signal session process %d: %v", pid, err)
		}
	}
	return len(pids)
}

// descendants lists the processes below pid, read from /proc.
func descendants(t testing.TB, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("list processes: %v", err)
	}
	children := map[int][]int{}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// The command name in parentheses may hold spaces; the parent PID
		// is the second field after it.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(fields[1]); err == nil {
			children[ppid] = append(children[ppid], child)
		}
	}
	var out []int
	queue := children[pid]
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, p)
		queue = append(queue, children[p]...)
	}
	return out
}

// writeSSHKey writes a new ed25519 private key in OpenSSH format to path and
// returns its public key.
func writeSSHKey(t testing.TB, path, comment string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshPub
}

// sshBannerReady succeeds once the server at addr sends its SSH banner.
func sshBannerReady(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "SSH-2.0-") {
			return fmt.Errorf("unexpected banner %q", line)
		}
		return nil
	}
}
