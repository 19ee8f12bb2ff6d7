package nats

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/storage"
)

func spec(t *testing.T, rawURL string, keys map[string]string) storage.Spec {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return storage.Spec{URL: u, Keys: keys}
}

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "user.creds")
	seed := filepath.Join(dir, "user.nk")
	ca := filepath.Join(dir, "ca.pem")
	ca2 := filepath.Join(dir, "ca2.pem")
	for _, f := range []string{creds, seed, ca, ca2} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name string
		url  string
		keys map[string]string
		want config // fields compared: server, bucket, prefix, auth, tls, timeouts
		desc string
	}{
		{
			name: "Litestream form",
			url:  "nats://nats.example.com:4223/litestream",
			want: config{server: "nats.example.com:4223", bucket: "litestream"},
			desc: "nats://nats.example.com:4223/litestream",
		},
		{
			name: "default port",
			url:  "nats://nats.example.com/b",
			want: config{server: "nats.example.com:4222", bucket: "b"},
			desc: "nats://nats.example.com:4222/b",
		},
		{
			name: "no host is the local server",
			url:  "nats:///b",
			want: config{server: "127.0.0.1:4222", bucket: "b"},
			desc: "nats://127.0.0.1:4222/b",
		},
		{
			name: "IPv6",
			url:  "nats://[::1]:4333/b",
			want: config{server: "[::1]:4333", bucket: "b"},
			desc: "nats://[::1]:4333/b",
		},
		{
			name: "path after the bucket",
			url:  "nats://h:1/b/dbs//app/",
			want: config{server: "h:1", bucket: "b", prefix: "dbs/app"},
			desc: "nats://h:1/b/dbs/app",
		},
		{
			name: "bucket and path keys",
			url:  "nats://h:1",
			keys: map[string]string{"bucket": "b", "path": "/app/"},
			want: config{server: "h:1", bucket: "b", prefix: "app"},
			desc: "nats://h:1/b/app",
		},
		{
			name: "keys that agree with the URL",
			url:  "nats://h:1/b/app",
			keys: map[string]string{"bucket": "b", "path": "app"},
			want: config{server: "h:1", bucket: "b", prefix: "app"},
			desc: "nats://h:1/b/app",
		},
		{
			name: "user and password in the URL",
			url:  "nats://alice:s%3Acret@h:1/b",
			want: config{server: "h:1", bucket: "b", user: "alice", password: "s:cret"},
			desc: "nats://h:1/b",
		},
		{
			name: "token in the URL",
			url:  "nats://tok3n@h:1/b",
			want: config{server: "h:1", bucket: "b", token: "tok3n"},
			desc: "nats://h:1/b",
		},
		{
			name: "URL user with the password key",
			url:  "nats://alice@h:1/b",
			keys: map[string]string{"password": "pw"},
			want: config{server: "h:1", bucket: "b", user: "alice", password: "pw"},
			desc: "nats://h:1/b",
		},
		{
			name: "keys override the URL's credentials",
			url:  "nats://alice:old@h:1/b",
			keys: map[string]string{"username": "bob", "password": "new"},
			want: config{server: "h:1", bucket: "b", user: "bob", password: "new"},
			desc: "nats://h:1/b",
		},
		{
			name: "user is an alias of username",
			url:  "nats://h:1/b",
			keys: map[string]string{"user": "bob", "password": "pw"},
			want: config{server: "h:1", bucket: "b", user: "bob", password: "pw"},
			desc: "nats://h:1/b",
		},
		{
			name: "token key",
			url:  "nats://h:1/b",
			keys: map[string]string{"token": "t"},
			want: config{server: "h:1", bucket: "b", token: "t"},
			desc: "nats://h:1/b",
		},
		{
			name: "creds",
			url:  "nats://h:1/b",
			keys: map[string]string{"creds": creds},
			want: config{server: "h:1", bucket: "b", creds: creds},
			desc: "nats://h:1/b",
		},
		{
			name: "nkey seed file",
			url:  "nats://h:1/b",
			keys: map[string]string{"nkey": seed},
			want: config{server: "h:1", bucket: "b", nkeySeedFile: seed},
			desc: "nats://h:1/b",
		},
		{
			name: "jwt and seed",
			url:  "nats://h:1/b",
			keys: map[string]string{"jwt": "eyJ", "seed": "SUA"},
			want: config{server: "h:1", bucket: "b", jwt: "eyJ", seed: "SUA"},
			desc: "nats://h:1/b",
		},
		{
			name: "tls and connection settings",
			url:  "nats://h:1/b?timeout=3s",
			keys: map[string]string{"tls": "true", "max-reconnects": "5", "reconnect-wait": "250ms"},
			want: config{server: "h:1", bucket: "b", tls: true, timeout: 3 * time.Second, maxReconnects: 5, reconnectWait: 250 * time.Millisecond},
			desc: "nats://h:1/b",
		},
		{
			name: "root CAs imply TLS",
			url:  "nats://h:1/b",
			keys: map[string]string{"root-cas": ca + ", " + ca2},
			want: config{server: "h:1", bucket: "b", tls: true, rootCAs: []string{ca, ca2}},
			desc: "nats://h:1/b",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(spec(t, tt.url, tt.keys))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want.timeout == 0 {
				want.timeout = DefaultTimeout
			}
			if want.maxReconnects == 0 {
				want.maxReconnects = DefaultMaxReconnects
			}
			if want.reconnectWait == 0 {
				want.reconnectWait = DefaultReconnectWait
			}
			if got.server != want.server || got.bucket != want.bucket || got.prefix != want.prefix ||
				got.user != want.user || got.password != want.password || got.token != want.token ||
				got.creds != want.creds || got.nkeySeedFile != want.nkeySeedFile || got.jwt != want.jwt || got.seed != want.seed ||
				got.tls != want.tls || strings.Join(got.rootCAs, ",") != strings.Join(want.rootCAs, ",") ||
				got.timeout != want.timeout || got.maxReconnects != want.maxReconnects || got.reconnectWait != want.reconnectWait {
				t.Fatalf("parsed\n%+v\nwant\n%+v", *got, want)
			}
			if d := got.describe(); d != tt.desc {
				t.Fatalf("described as %q; want %q", d, tt.desc)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		url  string
		keys map[string]string
		want string // in the error
	}{
		{"s3://h/b", nil, "must start with nats://"},
		{"nats://h:1", nil, "no bucket"},
		{"nats://h:1/", nil, "no bucket"},
		{"nats://h:1/my.bucket", nil, `invalid bucket name "my.bucket"`},
		{"nats://h:99999/b", nil, "invalid port"},
		{"nats://h:1/a", map[string]string{"bucket": "b"}, `the URL names bucket "a" but bucket: says "b"`},
		{"nats://h:1/b/x", map[string]string{"path": "y"}, `the URL has path "x" but path: says "y"`},
		{"nats://h:1/b", map[string]string{"username": "u"}, "a username needs a password"},
		{"nats://h:1/b", map[string]string{"password": "p"}, "a password needs a username"},
		{"nats://h:1/b", map[string]string{"jwt": "j"}, "jwt: and seed: must be given together"},
		{"nats://u:p@h:1/b", map[string]string{"token": "t"}, "choose one way to authenticate, not username/password and token"},
		{"nats://h:1/b", map[string]string{"creds": filepath.Join(dir, "missing.creds")}, "creds: cannot read the file"},
		{"nats://h:1/b", map[string]string{"nkey": filepath.Join(dir, "missing.nk")}, "nkey: cannot read the file"},
		{"nats://h:1/b", map[string]string{"client-cert": "c.pem"}, "client-cert: and client-key: must be given together"},
		{"nats://h:1/b", map[string]string{"tls": "maybe"}, `tls: "maybe" is not true or false`},
		{"nats://h:1/b", map[string]string{"timeout": "10"}, `timeout: "10" is not a duration`},
		{"nats://h:1/b", map[string]string{"reconnect-wait": "-1s"}, `reconnect-wait: "-1s" is not a duration`},
		{"nats://h:1/b", map[string]string{"max-reconnects": "many"}, `max-reconnects: "many" is not a whole number`},
	}
	for _, tt := range tests {
		_, err := parseConfig(spec(t, tt.url, tt.keys))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %v: error %v; want one containing %q", tt.url, tt.keys, err, tt.want)
		}
	}
	if _, err := parseConfig(storage.Spec{}); err == nil || !strings.Contains(err.Error(), "no URL") {
		t.Errorf("no URL: error %v", err)
	}
}

// TestParseConfigKeepsSecretsOutOfErrors checks that a rejected config
// never repeats the password or token it was given.
func TestParseConfigKeepsSecretsOutOfErrors(t *testing.T) {
	const secret = "hunter2-secret"
	for _, tt := range []struct {
		url  string
		keys map[string]string
	}{
		{"nats://u:" + secret + "@h:1/b", map[string]string{"token": secret}},
		{"nats://u:" + secret + "@h:1/", nil},
		{"nats://u:" + secret + "@h:1/b", map[string]string{"timeout": "x"}},
		{"nats://h:1/b", map[string]string{"password": secret}},
		{"nats://h:1/b", map[string]string{"jwt": secret}},
	} {
		_, err := parseConfig(spec(t, tt.url, tt.keys))
		if err == nil {
			t.Fatalf("%v: no error", tt.keys)
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("the error shows the secret: %v", err)
		}
	}
}
