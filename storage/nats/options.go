package nats

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/walship/walship/storage"
)

// Defaults of the connection settings, as in Litestream.
const (
	DefaultPort          = "4222"
	DefaultTimeout       = 10 * time.Second
	DefaultMaxReconnects = -1 // unlimited
	DefaultReconnectWait = 2 * time.Second
)

// validBucket is the set of names JetStream accepts for an object store.
var validBucket = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// config is a replica destination as parsed from its Spec.
type config struct {
	server string // host:port
	bucket string
	prefix string // path inside the bucket, without leading or trailing "/"

	// Authentication: at most one method is set.
	user, password string
	token          string
	creds          string // credentials file (JWT and seed)
	nkeySeedFile   string
	jwt, seed      string

	tls        bool
	rootCAs    []string
	clientCert string
	clientKey  string

	timeout       time.Duration
	maxReconnects int
	reconnectWait time.Duration
}

// describe returns nats://host:port/bucket[/path], with no credentials.
func (c *config) describe() string {
	s := "nats://" + c.server + "/" + c.bucket
	if c.prefix != "" {
		s += "/" + c.prefix
	}
	return s
}

// parseConfig reads a destination from spec: the URL
// nats://[user:password@]host[:port]/bucket[/path] and the replica's keys.
// Keys override what the URL says; a key that contradicts the URL's bucket
// or path is an error.
func parseConfig(spec storage.Spec) (*config, error) {
	u := spec.URL
	if u == nil {
		return nil, errors.New("nats replica has no URL; use url: nats://host:4222/bucket")
	}
	if !strings.EqualFold(u.Scheme, "nats") {
		return nil, fmt.Errorf("nats replica URL must start with nats://, not %s://", u.Scheme)
	}
	if u.Opaque != "" {
		return nil, errors.New("nats replica URL must have the form nats://host:4222/bucket")
	}
	c := &config{
		timeout:       DefaultTimeout,
		maxReconnects: DefaultMaxReconnects,
		reconnectWait: DefaultReconnectWait,
	}

	// Server. As in Litestream, a URL with no host means the local server.
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = DefaultPort
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return nil, fmt.Errorf("nats replica URL: invalid port %q", port)
	}
	c.server = net.JoinHostPort(host, port)

	// Bucket and path: the first element of the URL path is the bucket, the
	// rest a prefix inside it.
	urlPath := strings.Trim(u.Path, "/")
	urlBucket, urlPrefix, _ := strings.Cut(urlPath, "/")
	urlPrefix = cleanPrefix(urlPrefix)
	keyBucket := strings.Trim(spec.Option("bucket", "bucket"), "/")
	keyPrefix := cleanPrefix(spec.Option("path"))
	switch {
	case urlBucket != "" && keyBucket != "" && urlBucket != keyBucket:
		return nil, fmt.Errorf("nats replica: the URL names bucket %q but bucket: says %q; give the bucket once", urlBucket, keyBucket)
	case urlPrefix != "" && keyPrefix != "" && urlPrefix != keyPrefix:
		return nil, fmt.Errorf("nats replica: the URL has path %q but path: says %q; give the path once", urlPrefix, keyPrefix)
	}
	c.bucket = cmp.Or(keyBucket, urlBucket)
	c.prefix = cmp.Or(keyPrefix, urlPrefix)
	if c.bucket == "" {
		return nil, errors.New("nats replica has no bucket: use url: nats://host:4222/bucket or the bucket: key")
	}
	if !validBucket.MatchString(c.bucket) {
		return nil, fmt.Errorf("nats replica: invalid bucket name %q: an object store name may hold only letters, digits, '-' and '_'", c.bucket)
	}

	// Credentials: the URL's user information, then the keys, which win. A
	// URL user with no password is a token, as in every NATS client, unless
	// the password: key supplies the password.
	keyPassword := spec.Option("password")
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			c.user, c.password = u.User.Username(), pw
		} else if keyPassword != "" {
			c.user = u.User.Username()
		} else {
			c.token = u.User.Username()
		}
	}
	if v := cmp.Or(spec.Option("username"), spec.Option("user")); v != "" {
		c.user = v
	}
	if keyPassword != "" {
		c.password = keyPassword
	}
	if v := spec.Option("token"); v != "" {
		c.token = v
	}
	c.creds = spec.Option("creds", "creds")
	c.nkeySeedFile = spec.Option("nkey", "nkey")
	c.jwt = spec.Option("jwt")
	c.seed = spec.Option("seed")

	switch {
	case c.user != "" && c.password == "":
		return nil, errors.New("nats replica: a username needs a password (password: key, or nats://user:password@host/bucket)")
	case c.user == "" && c.password != "":
		return nil, errors.New("nats replica: a password needs a username (username: key, or nats://user:password@host/bucket)")
	case (c.jwt == "") != (c.seed == ""):
		return nil, errors.New("nats replica: jwt: and seed: must be given together")
	}
	var methods []string
	for _, m := range []struct {
		name string
		set  bool
	}{
		{"jwt/seed", c.jwt != ""},
		{"creds", c.creds != ""},
		{"nkey", c.nkeySeedFile != ""},
		{"username/password", c.user != ""},
		{"token", c.token != ""},
	} {
		if m.set {
			methods = append(methods, m.name)
		}
	}
	if len(methods) > 1 {
		return nil, fmt.Errorf("nats replica: choose one way to authenticate, not %s", strings.Join(methods, " and "))
	}

	// TLS. Root CAs or a client certificate imply TLS.
	var err error
	if c.tls, err = spec.BoolOption(false, "tls", "tls"); err != nil {
		return nil, fmt.Errorf("nats replica: %w", err)
	}
	for _, f := range strings.Split(spec.Option("root-cas", "root-cas"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			c.rootCAs = append(c.rootCAs, f)
		}
	}
	c.clientCert = spec.Option("client-cert", "client-cert")
	c.clientKey = spec.Option("client-key", "client-key")
	if (c.clientCert == "") != (c.clientKey == "") {
		return nil, errors.New("nats replica: client-cert: and client-key: must be given together")
	}
	if len(c.rootCAs) > 0 || c.clientCert != "" {
		c.tls = true
	}

	// Files must be readable now, so a typo is reported at start-up and not
	// at the first connection.
	files := [][2]string{{"creds", c.creds}, {"nkey", c.nkeySeedFile}, {"client-cert", c.clientCert}, {"client-key", c.clientKey}}
	for _, f := range c.rootCAs {
		files = append(files, [2]string{"root-cas", f})
	}
	for _, f := range files {
		if f[1] == "" {
			continue
		}
		if err := readable(f[1]); err != nil {
			return nil, fmt.Errorf("nats replica: %s: cannot read the file: %w", f[0], err)
		}
	}

	// Connection settings.
	if c.timeout, err = durationOption(spec, DefaultTimeout, "timeout"); err != nil {
		return nil, err
	}
	if c.reconnectWait, err = durationOption(spec, DefaultReconnectWait, "reconnect-wait"); err != nil {
		return nil, err
	}
	if v := spec.Option("max-reconnects", "max-reconnects"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < -1 {
			return nil, fmt.Errorf("nats replica: max-reconnects: %q is not a whole number (-1 means no limit)", v)
		}
		c.maxReconnects = n
	}
	return c, nil
}

// durationOption reads a positive duration such as "10s".
func durationOption(spec storage.Spec, def time.Duration, key string) (time.Duration, error) {
	v := spec.Option(key, key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("nats replica: %s: %q is not a duration such as 10s or 1m", key, v)
	}
	return d, nil
}

// readable checks that a file named in the config can be opened.
func readable(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	return f.Close()
}

// cleanPrefix removes stray slashes from a path inside the bucket.
func cleanPrefix(p string) string {
	var parts []string
	for _, e := range strings.Split(p, "/") {
		if e != "" {
			parts = append(parts, e)
		}
	}
	return strings.Join(parts, "/")
}
