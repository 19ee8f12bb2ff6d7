package testserver

import (
	"context"
	"fmt"
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
type NATSServer struct {
	// Host is 127.0.0.1:port.
	Host string
	// User and Password are the credentials clients must present. They are
	// empty for a server started by NATSWithToken.
	User, Password string
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

	cfg Config // to restart the server
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

// The password and token are fixed so that tests can check that they never
// appear in error messages.
const (
	natsTestUser     = "walship"
	natsTestPassword = "nats-test-password-0f6b2c"
	natsTestToken    = "nats-test-token-9d3e71"
)

// NATS starts nats-server with JetStream (-js), its store in a temporary
// directory (-sd), on a free port of 127.0.0.1. Clients must authenticate
// as User with Password; a second user authenticates with the NKey seed in
// NKeySeedFile. The server is ready when JetStream answers.
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
	bin := Bin(t, "nats-server")
	port := FreePort(t)
	dir := t.TempDir()
	s := &NATSServer{Host: Addr(port), StoreDir: filepath.Join(dir, "jetstream")}

	var auth string
	if token {
		s.Token = natsTestToken
		auth = fmt.Sprintf("authorization {\n  token: %s\n}\n", strconv.Quote(s.Token))
	} else {
		s.User, s.Password = natsTestUser, natsTestPassword
		pub, seedFile := natsUserNKey(t, dir)
		s.NKeyUser, s.NKeySeedFile = pub, seedFile
		auth = fmt.Sprintf("authorization {\n  users: [\n    {user: %s, password: %s}\n    {nkey: %s}\n  ]\n}\n",
			strconv.Quote(s.User), strconv.Quote(s.Password), strconv.Quote(pub))
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}

	s.cfg = Config{
		Name: "nats-server",
		Path: bin,
		// Command-line flags take precedence over the config file, which
		// holds only the authorization block. Without -m there is no
		// monitoring port.
		Args: []string{"-c", conf, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", s.StoreDir},
		Dir:  dir,
		Ready: func() error {
			if err := TCPReady(s.Host)(); err != nil {
				return err
			}
			nc, err := s.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err = js.AccountInfo(ctx)
			return err
		},
	}
	s.Process = Start(t, s.cfg)
	return s
}

// Restart stops the server and starts it again on the same port with the
// same store, as after a crash: clients must reconnect.
func (s *NATSServer) Restart(t testing.TB) {
	t.Helper()
	s.Process.Stop()
	s.Process = Start(t, s.cfg)
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
