package webdav

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/walship/walship/storage"
)

// EnvPassword is the environment variable read for the password when neither
// the password key nor the URL gives one.
const EnvPassword = "WALSHIP_WEBDAV_PASSWORD"

// config is a destination as the operator wrote it.
type config struct {
	https      bool   // webdavs://
	host       string // host[:port], as in the URL
	root       string // the replica's collection: "/" or "/a/b", no trailing slash
	user       string
	password   string
	skipVerify bool
	caFile     string
}

// parseConfig reads a destination from spec: the URL
// webdav[s]://[user[:password]@]host[:port]/path, with the keys user (or
// username), password and path overriding the URL, plus skip-verify and
// ca-file. getenv supplies EnvPassword.
func parseConfig(spec storage.Spec, getenv func(string) string) (*config, error) {
	u := spec.URL
	if u == nil {
		return nil, errors.New("no URL: write url: webdav://HOST[:PORT]/PATH (or webdavs:// for https)")
	}
	if spec.Keys["webdav-url"] != "" {
		return nil, errors.New("both url and webdav-url are set: keep one (url: webdavs://HOST/PATH, or webdav-url: https://HOST with path:)")
	}
	cfg := &config{}
	switch strings.ToLower(u.Scheme) {
	case "webdav":
	case "webdavs":
		cfg.https = true
	default:
		return nil, fmt.Errorf("URL scheme %q is not webdav or webdavs", u.Scheme)
	}
	if u.Opaque != "" {
		return nil, fmt.Errorf("URL %s:%s has no host: write %s://HOST[:PORT]/PATH", u.Scheme, u.Opaque, strings.ToLower(u.Scheme))
	}
	cfg.host = u.Host
	if cfg.host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("URL has no host: write %s://HOST[:PORT]/PATH", strings.ToLower(u.Scheme))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("URL port %q is not a port number (1-65535)", p)
		}
	}

	cfg.root = u.Path
	if v := spec.Keys["path"]; v != "" {
		cfg.root = v
	}
	cfg.root = cleanRoot(cfg.root)

	if u.User != nil {
		cfg.user = u.User.Username()
		cfg.password, _ = u.User.Password()
	}
	for _, k := range []string{"user", "username", "webdav-username"} {
		if v := spec.Keys[k]; v != "" {
			cfg.user = v
			break
		}
	}
	for _, k := range []string{"password", "webdav-password"} {
		if v := spec.Keys[k]; v != "" {
			cfg.password = v
			break
		}
	}
	if cfg.password == "" && getenv != nil {
		cfg.password = getenv(EnvPassword)
	}
	if cfg.password != "" && cfg.user == "" {
		return nil, errors.New("a password is set but no user: add user: (or write webdav://USER@HOST/PATH)")
	}

	var err error
	if cfg.skipVerify, err = spec.BoolOption(false, "skip-verify", "skip-verify", "skipVerify"); err != nil {
		return nil, err
	}
	cfg.caFile = spec.Option("ca-file", "ca-file")
	if (cfg.skipVerify || cfg.caFile != "") && !cfg.https {
		return nil, errors.New("skip-verify and ca-file apply only to webdavs:// (https) URLs")
	}
	return cfg, nil
}

// cleanRoot turns a replica path into "/" or "/a/b": absolute, cleaned, with
// no trailing slash.
func cleanRoot(p string) string {
	p = path.Clean("/" + strings.TrimSpace(p))
	return p
}

// display is the destination as shown in messages: the URL without user
// information.
func (cfg *config) display() string {
	scheme := "webdav"
	if cfg.https {
		scheme = "webdavs"
	}
	u := url.URL{Scheme: scheme, Host: cfg.host, Path: cfg.root}
	if cfg.root == "/" {
		u.Path = ""
	}
	return u.String()
}

// httpClient returns the HTTP client for the destination. It has no overall
// timeout, since uploads of large snapshots take as long as they take;
// requests are bounded by their contexts, connection set-up and the wait for
// response headers by the timeouts below.
func (cfg *config) httpClient() (*http.Client, error) {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
	}
	if cfg.https {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.skipVerify}
		if cfg.caFile != "" {
			pem, err := os.ReadFile(cfg.caFile)
			if err != nil {
				return nil, fmt.Errorf("ca-file: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ca-file %s holds no PEM certificate", cfg.caFile)
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
	}
	return &http.Client{
		Transport: tr,
		// Redirects are followed only by GET and HEAD: a redirected PUT,
		// MOVE or PROPFIND would lose its body or its meaning.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if req.Method != http.MethodGet && req.Method != http.MethodHead {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}, nil
}
