package webdav

import (
	"context"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
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
	noEnv := func(string) string { return "" }
	tests := []struct {
		url     string
		keys    map[string]string
		env     string
		want    config
		display string
	}{
		{"webdav://dav.example.com/backups/app", nil, "",
			config{host: "dav.example.com", root: "/backups/app"}, "webdav://dav.example.com/backups/app"},
		{"webdavs://dav.example.com:8443/backups/app/", nil, "",
			config{https: true, host: "dav.example.com:8443", root: "/backups/app"}, "webdavs://dav.example.com:8443/backups/app"},
		{"WEBDAVS://dav.example.com", nil, "",
			config{https: true, host: "dav.example.com", root: "/"}, "webdavs://dav.example.com"},
		{"webdav://alice:s3cret@dav.example.com/db", nil, "",
			config{host: "dav.example.com", root: "/db", user: "alice", password: "s3cret"}, "webdav://dav.example.com/db"},
		// Keys override the URL.
		{"webdav://alice:s3cret@dav.example.com/db", map[string]string{"user": "bob", "password": "other", "path": "elsewhere/x"}, "",
			config{host: "dav.example.com", root: "/elsewhere/x", user: "bob", password: "other"}, "webdav://dav.example.com/elsewhere/x"},
		{"webdav://dav.example.com/db", map[string]string{"username": "carol", "password": "pw"}, "",
			config{host: "dav.example.com", root: "/db", user: "carol", password: "pw"}, ""},
		// Litestream's key names.
		{"webdav://dav.example.com/db", map[string]string{"webdav-username": "dave", "webdav-password": "pw"}, "",
			config{host: "dav.example.com", root: "/db", user: "dave", password: "pw"}, ""},
		// The environment supplies a password only when nothing else does.
		{"webdav://erin@dav.example.com/db", nil, "from-env",
			config{host: "dav.example.com", root: "/db", user: "erin", password: "from-env"}, ""},
		{"webdav://erin:from-url@dav.example.com/db", nil, "from-env",
			config{host: "dav.example.com", root: "/db", user: "erin", password: "from-url"}, ""},
		{"webdav://dav.example.com/db", map[string]string{"user": "erin", "password": "from-key"}, "from-env",
			config{host: "dav.example.com", root: "/db", user: "erin", password: "from-key"}, ""},
		// Paths are cleaned; names with spaces stay as they are.
		{"webdav://h/a//b/../c%20d/", nil, "",
			config{host: "h", root: "/a/c d"}, "webdav://h/a/c%20d"},
		{"webdavs://h/db?skip-verify=true", nil, "",
			config{https: true, host: "h", root: "/db", skipVerify: true}, ""},
		{"webdavs://h/db", map[string]string{"skip-verify": "TRUE", "ca-file": "/etc/ca.pem"}, "",
			config{https: true, host: "h", root: "/db", skipVerify: true, caFile: "/etc/ca.pem"}, ""},
		{"webdav://[::1]:8080/db", nil, "",
			config{host: "[::1]:8080", root: "/db"}, "webdav://[::1]:8080/db"},
	}
	for _, tt := range tests {
		getenv := noEnv
		if tt.env != "" {
			getenv = func(k string) string {
				if k == EnvPassword {
					return tt.env
				}
				return ""
			}
		}
		got, err := parseConfig(spec(t, tt.url, tt.keys), getenv)
		if err != nil {
			t.Errorf("%s %v: %v", tt.url, tt.keys, err)
			continue
		}
		if *got != tt.want {
			t.Errorf("%s %v:\n got %+v\nwant %+v", tt.url, tt.keys, *got, tt.want)
		}
		if tt.display != "" && got.display() != tt.display {
			t.Errorf("%s: display %q, want %q", tt.url, got.display(), tt.display)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		url  string
		keys map[string]string
		want string
	}{
		{"s3://bucket/db", nil, `scheme "s3" is not webdav`},
		{"webdav:///db", nil, "no host: write webdav://HOST[:PORT]/PATH"},
		{"webdavs://:8443/db", nil, "no host: write webdavs://"},
		{"webdav:db", nil, "no host"},
		{"webdav://h:99999/db", nil, `port "99999" is not a port number`},
		{"webdav://h/db", map[string]string{"password": "pw"}, "no user: add user:"},
		{"webdav://:pw@h/db", nil, "no user"},
		{"webdavs://h/db", map[string]string{"skip-verify": "maybe"}, `skip-verify: "maybe" is not true or false`},
		{"webdav://h/db", map[string]string{"skip-verify": "true"}, "only to webdavs://"},
		{"webdav://h/db", map[string]string{"ca-file": "/ca.pem"}, "only to webdavs://"},
	}
	for _, tt := range tests {
		_, err := parseConfig(spec(t, tt.url, tt.keys), nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %v: error %v; want one containing %q", tt.url, tt.keys, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") && !strings.Contains(tt.want, "pw") {
			t.Errorf("%s: the error shows the password: %v", tt.url, err)
		}
	}
	if _, err := parseConfig(storage.Spec{}, nil); err == nil || !strings.Contains(err.Error(), "url: webdav://") {
		t.Errorf("no URL: %v", err)
	}
}

func TestOpenCAFile(t *testing.T) {
	_, err := Open(context.Background(), spec(t, "webdavs://h/db", map[string]string{"ca-file": "/nonexistent/ca.pem"}))
	if err == nil || !strings.Contains(err.Error(), "ca-file") {
		t.Fatalf("a missing ca-file: %v", err)
	}
	dir := t.TempDir()
	bad := dir + "/bad.pem"
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), spec(t, "webdavs://h/db", map[string]string{"ca-file": bad}))
	if err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("a ca-file without certificates: %v", err)
	}
}

func TestMultistatusEntries(t *testing.T) {
	// Shapes seen from real servers: a default namespace, absolute hrefs,
	// escaped names, and a 404 propstat listing what the server lacks.
	const body = `<?xml version="1.0"?>
<multistatus xmlns="DAV:">
 <response><href>/db/ltx/0/</href><propstat><prop><resourcetype><collection/></resourcetype>
  <getlastmodified>Sat, 21 Nov 2026 22:04:30 GMT</getlastmodified></prop><status>HTTP/1.1 200 OK</status></propstat>
  <propstat><prop><getcontentlength/></prop><status>HTTP/1.1 404 Not Found</status></propstat></response>
 <response><href>http://h:8080/db/ltx/0/0000000000000001-0000000000000002.ltx</href><propstat><prop><resourcetype/>
  <getcontentlength>1234</getcontentlength><getlastmodified>Wed, 04 Mar 2026 05:06:07 GMT</getlastmodified></prop>
  <status>HTTP/1.1 200 OK</status></propstat></response>
 <response><href>/db/ltx/0/odd%20name</href><propstat><prop><getcontentlength>0</getcontentlength></prop>
  <status>HTTP/1.1 200 OK</status></propstat></response>
</multistatus>`
	var ms multistatus
	if err := xml.Unmarshal([]byte(body), &ms); err != nil {
		t.Fatal(err)
	}
	got := ms.entries()
	want := []entry{
		{name: "0", isDir: true, size: -1, mtime: time.Date(2026, 11, 21, 22, 4, 30, 0, time.UTC)},
		{name: "0000000000000001-0000000000000002.ltx", size: 1234, mtime: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)},
		{name: "odd name", size: 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries: %+v", len(got), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestContentRangeStart(t *testing.T) {
	for s, want := range map[string]int64{"bytes 3-5/11": 3, "bytes 0-0/*": 0, " bytes 100-199/2000": 100} {
		if got, ok := contentRangeStart(s); !ok || got != want {
			t.Errorf("%q: %d %v; want %d", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "bytes */11", "items 1-2/3"} {
		if _, ok := contentRangeStart(s); ok {
			t.Errorf("%q parsed", s)
		}
	}
}

func TestRetryable(t *testing.T) {
	yes := []error{
		&httpError{Status: 500}, &httpError{Status: 502}, &httpError{Status: 503}, &httpError{Status: 429},
		&httpError{Status: 408}, &httpError{Status: 423},
		&url.Error{Op: "Put", URL: "http://h/x", Err: syscall.ECONNRESET},
		&url.Error{Op: "Get", URL: "http://h/x", Err: io.EOF},
		&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED},
		fmt.Errorf("PROPFIND: %w", retryLater(io.ErrUnexpectedEOF)),
	}
	no := []error{
		&httpError{Status: 400}, &httpError{Status: 401}, &httpError{Status: 403}, &httpError{Status: 404},
		&httpError{Status: 409}, &httpError{Status: 501}, &httpError{Status: 505},
		&sourceError{err: errors.New("disk on fire")},
		permanent(errors.New("not XML")),
		&url.Error{Op: "Get", URL: "https://h/x", Err: x509.UnknownAuthorityError{}},
		&url.Error{Op: "Get", URL: "https://h/x", Err: context.Canceled},
		errors.New("something else"),
	}
	for _, err := range yes {
		if !retryable(err) {
			t.Errorf("%v (%T) is not retried", err, err)
		}
	}
	for _, err := range no {
		if retryable(err) {
			t.Errorf("%v (%T) is retried", err, err)
		}
	}
}

func TestHTTPErrorRedacts(t *testing.T) {
	c := &Client{secrets: []string{"hunter2"}}
	res := &http.Response{
		StatusCode: 500,
		Body:       io.NopCloser(strings.NewReader("failed to authenticate alice:hunter2 at\n  /db")),
		Request:    &http.Request{Method: "PUT", URL: &url.URL{Path: "/db/x"}},
	}
	err := c.statusError(res)
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("the error quotes the password: %v", err)
	}
	if want := "PUT /db/x: 500 Internal Server Error: failed to authenticate alice:REDACTED at /db"; err.Error() != want {
		t.Fatalf("error %q; want %q", err, want)
	}

	// A redirect names where to point the replica, without user information.
	res = &http.Response{
		StatusCode: 301,
		Header:     http.Header{"Location": {"https://alice:hunter2@dav.example.com/db/"}},
		Body:       io.NopCloser(strings.NewReader("<html>Moved</html>")),
		Request:    &http.Request{Method: "MKCOL", URL: &url.URL{Path: "/db/"}},
	}
	err = c.statusError(res)
	if want := "MKCOL /db/: 301 Moved Permanently: redirected to https://dav.example.com/db/; point the replica URL there"; err.Error() != want {
		t.Fatalf("error %q; want %q", err, want)
	}
}
