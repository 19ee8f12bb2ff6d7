package testserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// WebDAVServer is a running rclone serve webdav on 127.0.0.1, serving a
// local directory to one user with basic authentication.
type WebDAVServer struct {
	// URL is the replica URL of the served root, without credentials:
	// webdav://127.0.0.1:PORT, or webdavs://127.0.0.1:PORT for TLS.
	URL string
	// HTTPURL is the same root as http:// or https://, for raw requests.
	HTTPURL  string
	User     string
	Password string
	// Dir is the served directory on disk: the path /a/b of the server is
	// Dir/a/b.
	Dir string
	// CAFile is the PEM certificate the TLS server presents (self-signed,
	// for 127.0.0.1); "" without TLS. Trust it with ca-file.
	CAFile string
	// CertPool holds that certificate, for raw https requests.
	CertPool *x509.CertPool

	Process *Process

	paths atomic.Int64
}

// WebDAVMinRclone is the oldest rclone whose serve webdav honours the
// X-OC-Mtime header, which the WebDAV backend sets file times with.
// Debian 12 ships 1.60.1, which ignores it; scripts/install-test-servers
// builds a newer one into Dir()/bin, where Bin looks first.
const WebDAVMinRclone = "v1.63"

// RcloneWebDAV starts rclone serve webdav over http on a free port of
// 127.0.0.1, serving a new temporary directory to a random user and
// password. It never reads the user's rclone config. The test fails if
// rclone is missing or ignores X-OC-Mtime.
func RcloneWebDAV(t testing.TB) *WebDAVServer {
	t.Helper()
	return startRcloneWebDAV(t, false)
}

// RcloneWebDAVS is RcloneWebDAV over https, with a self-signed certificate
// for 127.0.0.1 in CAFile.
func RcloneWebDAVS(t testing.TB) *WebDAVServer {
	t.Helper()
	return startRcloneWebDAV(t, true)
}

func startRcloneWebDAV(t testing.TB, useTLS bool) *WebDAVServer {
	t.Helper()
	bin := Bin(t, "rclone")
	work := t.TempDir()
	root := filepath.Join(work, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	s := &WebDAVServer{
		User:     "walship-" + webdavRandomHex(t, 4),
		Password: "pw-" + webdavRandomHex(t, 12),
		Dir:      root,
	}
	args := []string{
		"serve", "webdav", root,
		"--addr", Addr(port),
		"--user", s.User,
		"--pass", s.Password,
		"--config", filepath.Join(work, "rclone.conf"), // absent: no remotes
		"--cache-dir", filepath.Join(work, "cache"),
		"--log-level", "NOTICE",
	}
	scheme := "http"
	s.URL = fmt.Sprintf("webdav://%s", Addr(port))
	if useTLS {
		cert, key := webdavWriteSelfSigned(t, work)
		args = append(args, "--cert", cert, "--key", key)
		s.CAFile = cert
		pemBytes, err := os.ReadFile(cert)
		if err != nil {
			t.Fatal(err)
		}
		s.CertPool = x509.NewCertPool()
		s.CertPool.AppendCertsFromPEM(pemBytes)
		scheme = "https"
		s.URL = fmt.Sprintf("webdavs://%s", Addr(port))
	}
	s.HTTPURL = fmt.Sprintf("%s://%s", scheme, Addr(port))
	s.Process = Start(t, Config{
		Name: "rclone-webdav",
		Path: bin,
		Args: args,
		Env: []string{
			"RCLONE_CONFIG=" + filepath.Join(work, "rclone.conf"),
			"HOME=" + work,
			"XDG_CONFIG_HOME=" + filepath.Join(work, "config"),
			"XDG_CACHE_HOME=" + filepath.Join(work, "cache"),
		},
		Dir:   work,
		Ready: TCPReady(Addr(port)),
	})
	s.checkMtime(t, bin)
	return s
}

// checkMtime uploads a file with X-OC-Mtime and fails the test, naming the
// fix, if the server did not set the file's modification time from it.
func (s *WebDAVServer) checkMtime(t testing.TB, bin string) {
	t.Helper()
	const probe = "/.walship-mtime-probe"
	want := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	req, err := http.NewRequest(http.MethodPut, s.HTTPURL+probe, bytes.NewReader([]byte("probe")))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(s.User, s.Password)
	req.Header.Set("X-OC-Mtime", fmt.Sprint(want.Unix()))
	res, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("rclone serve webdav: probe upload: %v; its output:\n%s", err, s.Process.Log())
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("rclone serve webdav: probe upload: %s; its output:\n%s", res.Status, s.Process.Log())
	}
	// rclone sets the time just after it answers.
	deadline := time.Now().Add(5 * time.Second)
	for {
		fi, err := os.Stat(filepath.Join(s.Dir, probe))
		if err == nil && fi.ModTime().Equal(want) {
			break
		}
		if time.Now().After(deadline) {
			version, _ := exec.Command(bin, "version").Output()
			first, _, _ := strings.Cut(string(version), "\n")
			t.Fatalf("%s (%s) ignores the X-OC-Mtime header, so it cannot keep the file times the WebDAV backend sets; "+
				"the tests need rclone %s or later: run scripts/install-test-servers, which builds one into %s",
				bin, strings.TrimSpace(first), WebDAVMinRclone, filepath.Join(Dir(), "bin"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.Remove(filepath.Join(s.Dir, probe)); err != nil {
		t.Fatal(err)
	}
}

// HTTPClient returns a client for raw requests to the server (trusting its
// certificate when it has TLS).
func (s *WebDAVServer) HTTPClient() *http.Client {
	if s.CertPool == nil {
		return &http.Client{Timeout: 30 * time.Second}
	}
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool}},
	}
}

// NewPath returns a fresh path on the server for one test or subtest,
// "/<test name>-<n>", which does not exist yet. On disk it is
// filepath.Join(s.Dir, path).
func (s *WebDAVServer) NewPath(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, t.Name())
	if len(name) > 80 {
		name = name[len(name)-80:]
	}
	return fmt.Sprintf("/%s-%d", name, s.paths.Add(1))
}

// webdavWriteSelfSigned writes a self-signed ECDSA certificate for 127.0.0.1 and
// localhost (usable as its own CA) and its key to dir.
func webdavWriteSelfSigned(t testing.TB, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "walship test WebDAV server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func webdavRandomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
