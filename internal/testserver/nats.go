package testserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// NATSServer is a running nats-server with JetStream enabled, listening on
// 127.0.0.1 only, without a monitoring port.
//
// Each server has a name and credentials of its own, and its readiness check
// makes sure that the server answering on Host is this one: tests running
// at the same time in other processes start nats-servers too, and a client
// must never use, or reconnect to, another test's server by mistake.
type NATSServer struct {
	// Host is 127.0.0.1:port.
	Host string
	// Name is the server's name (-n), unique to this server.
	Name string
	// User and Password are the credentials clients must present. They are
	// empty for a server started by NATSWithToken.
	User, Password string
	// NoChunksUser and NoChunksPassword are the credentials of a user who
	// may do everything except store object-store chunks (publish to
	// $O.*.C.>): the server refuses each chunk but accepts an object's
	// metadata, as when chunks are lost on the way. Empty for a server
	// started by NATSWithToken.
	NoChunksUser, NoChunksPassword string
	// Token is the token clients must present when the server was started by
	// NATSWithToken; empty otherwise.
	Token string
	// NKeyUser is the public key of an extra user that authenticates with
	// NKeySeedFile (a seed file written for the test); empty for a server
	// started by NATSWithToken.
	NKeyUser, NKeySeedFile string
	// StoreDir is the server's JetStream storage directory (-sd).
	StoreDir string

	Process *Process

	bin, conf, dir string
	starts         int // to give each start a directory of its own
}

// URL returns nats://host:port, without credentials.
func (s *NATSServer) URL() string { return "nats://" + s.Host }

// Connect returns a connection to the server with its credentials, closed
// when the test ends.
func (s *NATSServer) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := s.connect()
	if err != nil {
		t.Fatalf("connect to nats-server %s: %v", s.Host, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func (s *NATSServer) connect() (*nats.Conn, error) {
	opts := []nats.Option{nats.Name("walship-test"), nats.Timeout(2 * time.Second)}
	switch {
	case s.Token != "":
		opts = append(opts, nats.Token(s.Token))
	case s.User != "":
		opts = append(opts, nats.UserInfo(s.User, s.Password))
	}
	return nats.Connect(s.URL(), opts...)
}

// NATS starts nats-server with JetStream (-js), its store in a temporary
// directory (-sd), on a port of 127.0.0.1 that the server picks itself (so
// that no other process can take it between the choice and the server's
// start). Clients must authenticate as User with Password; a second user
// authenticates with the NKey seed in NKeySeedFile, and a third is
// NoChunksUser. The server is ready when it answers with its own name and
// JetStream answers.
func NATS(t testing.TB) *NATSServer {
	t.Helper()
	return startNATS(t, false)
}

// NATSWithToken is NATS, except that clients authenticate with Token.
func NATSWithToken(t testing.TB) *NATSServer {
	t.Helper()
	return startNATS(t, true)
}

func startNATS(t testing.TB, token bool) *NATSServer {
	t.Helper()
	dir := t.TempDir()
	s := &NATSServer{bin: Bin(t, "nats-server"), dir: dir, StoreDir: filepath.Join(dir, "jetstream")}

	// The credentials are random, so that a client of this server cannot
	// log in to another test's server that later listens on the same port;
	// they have a recognisable prefix, so that tests can check that they
	// never appear in error messages.
	var auth string
	if token {
		s.Token = "nats-test-token-" + randomHex(t)
		auth = fmt.Sprintf("authorization {\n  token: %s\n}\n", strconv.Quote(s.Token))
	} else {
		s.User, s.Password = "walship", "nats-test-password-"+randomHex(t)
		s.NoChunksUser, s.NoChunksPassword = "nochunks", "nats-test-password-"+randomHex(t)
		pub, seedFile := natsUserNKey(t, dir)
		s.NKeyUser, s.NKeySeedFile = pub, seedFile
		auth = fmt.Sprintf(`authorization {
  users: [
    {user: %s, password: %s}
    {nkey: %s}
    {user: %s, password: %s, permissions: {publish: {allow: [">"], deny: ["$O.*.C.>"]}}}
  ]
}
`, strconv.Quote(s.User), strconv.Quote(s.Password), strconv.Quote(pub), strconv.Quote(s.NoChunksUser), strconv.Quote(s.NoChunksPassword))
	}
	s.conf = filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(s.conf, []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}

	s.start(t, -1) // nats-server's "any free port"
	// Registered after Start, this runs before the server is stopped.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nats-server %s (%s) output:\n%s", s.Name, s.Host, s.Process.Log())
		}
	})
	return s
}

// start starts the server on port, or on a port it picks when port is -1,
// and sets Host, Name and Process.
func (s *NATSServer) start(t testing.TB, port int) {
	t.Helper()
	s.starts++
	s.Name = "walship-test-" + randomHex(t)
	portsDir := filepath.Join(s.dir, fmt.Sprintf("ports-%d", s.starts))
	if err := os.Mkdir(portsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if port > 0 {
		s.Host = Addr(port)
	} else {
		s.Host = ""
	}
	s.Process = Start(t, Config{
		Name: "nats-server",
		Path: s.bin,
		// Command-line flags take precedence over the config file, which
		// holds only the authorization block. Without -m there is no
		// monitoring port. The server writes the address it listens on to
		// a file in portsDir.
		Args: []string{"-c", s.conf, "-n", s.Name, "-a", "127.0.0.1", "-p", strconv.Itoa(port),
			"-js", "-sd", s.StoreDir, "--ports_file_dir", portsDir},
		Dir: s.dir,
		Ready: func() error {
			if s.Host == "" {
				host, err := natsPortsFile(portsDir)
				if err != nil {
					return err
				}
				s.Host = host
			}
			return s.ready()
		},
	})
}

// ready checks that the server on Host is this one and that JetStream
// answers.
func (s *NATSServer) ready() error {
	if err := TCPReady(s.Host)(); err != nil {
		return err
	}
	nc, err := s.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	if name := nc.ConnectedServerName(); name != s.Name {
		return fmt.Errorf("the nats-server on %s is %q, not this test's %q", s.Host, name, s.Name)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// natsPortsFile returns host:port from the ports file nats-server wrote in
// dir (--ports_file_dir), once it exists.
func natsPortsFile(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.ports"))
	if err != nil || len(files) == 0 {
		return "", errors.New("nats-server has not written its ports file yet")
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return "", err
	}
	var ports struct {
		Nats []string `json:"nats"`
	}
	if err := json.Unmarshal(b, &ports); err != nil || len(ports.Nats) == 0 {
		return "", fmt.Errorf("nats-server's ports file %s is not complete yet: %q", files[0], b)
	}
	u, err := url.Parse(ports.Nats[0])
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("nats-server's ports file %s: bad address %q", files[0], ports.Nats[0])
	}
	return u.Host, nil
}

// Restart stops the server and starts it again on the same port with the
// same store, as after a crash: clients must reconnect. The restarted
// server has a new Name.
func (s *NATSServer) Restart(t testing.TB) {
	t.Helper()
	s.Process.Stop()
	_, portStr, err := net.SplitHostPort(s.Host)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	s.start(t, port)
}

// randomHex returns 12 random hex digits.
func randomHex(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// natsUserNKey creates a user NKey and writes its seed to a file in dir.
func natsUserNKey(t testing.TB, dir string) (publicKey, seedFile string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatalf("create NKey: %v", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seedFile = filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return pub, seedFile
}
