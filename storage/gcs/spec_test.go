package gcs

import (
	"net/url"
	"strings"
	"testing"

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

func TestParseSpec(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	tests := []struct {
		url  string
		keys map[string]string
		want config
	}{
		{"gs://bucket/path/to/db", nil, config{bucket: "bucket", prefix: "path/to/db", partSize: DefaultPartSize}},
		{"gs://bucket", nil, config{bucket: "bucket", partSize: DefaultPartSize}},
		{"gs://bucket/", nil, config{bucket: "bucket", partSize: DefaultPartSize}},
		{"gs://bucket//db//", nil, config{bucket: "bucket", prefix: "db", partSize: DefaultPartSize}},
		{"GS://my.bucket_1-x/db", nil, config{bucket: "my.bucket_1-x", prefix: "db", partSize: DefaultPartSize}},
		// Keys override the URL.
		{"gs://url-bucket/url-path", map[string]string{"bucket": "key-bucket", "path": "/key/path/"},
			config{bucket: "key-bucket", prefix: "key/path", partSize: DefaultPartSize}},
		{"gs://url-bucket/url-path", map[string]string{"bucket": "", "path": ""},
			config{bucket: "url-bucket", prefix: "url-path", partSize: DefaultPartSize}},
		// Endpoints get the JSON API path when they have none.
		{"gs://b1c/db?endpoint=http://127.0.0.1:4443", nil,
			config{bucket: "b1c", prefix: "db", endpoint: "http://127.0.0.1:4443/storage/v1/", partSize: DefaultPartSize}},
		{"gs://b1c/db?endpoint=http://ignored:1", map[string]string{"endpoint": "https://storage-x.p.googleapis.com/"},
			config{bucket: "b1c", prefix: "db", endpoint: "https://storage-x.p.googleapis.com/storage/v1/", partSize: DefaultPartSize}},
		{"gs://b1c/db", map[string]string{"endpoint": "https://gw.example.com/gcs/storage/v1"},
			config{bucket: "b1c", prefix: "db", endpoint: "https://gw.example.com/gcs/storage/v1/", partSize: DefaultPartSize}},
		{"gs://b1c/db", map[string]string{"endpoint": "https://gw.example.com", "skip-verify": "true"},
			config{bucket: "b1c", prefix: "db", endpoint: "https://gw.example.com/storage/v1/", partSize: DefaultPartSize, skipVerify: true}},
		// Part sizes are rounded up to 256 KiB.
		{"gs://b1c/db?part-size=1MiB", nil, config{bucket: "b1c", prefix: "db", partSize: 1 << 20}},
		{"gs://b1c/db", map[string]string{"part-size": "5MB"}, config{bucket: "b1c", prefix: "db", partSize: 5 << 20}},
		{"gs://b1c/db", map[string]string{"part-size": "262144"}, config{bucket: "b1c", prefix: "db", partSize: 256 << 10}},
		{"gs://b1c/db", map[string]string{"credentials-file": "/etc/walship/gcs.json"},
			config{bucket: "b1c", prefix: "db", credentialsFile: "/etc/walship/gcs.json", partSize: DefaultPartSize}},
	}
	for _, tt := range tests {
		got, err := parseSpec(spec(t, tt.url, tt.keys))
		if err != nil {
			t.Errorf("%s %v: %v", tt.url, tt.keys, err)
			continue
		}
		if *got != tt.want {
			t.Errorf("%s %v:\n got %+v\nwant %+v", tt.url, tt.keys, *got, tt.want)
		}
	}
}

func TestParseSpecErrors(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	tests := []struct {
		url  string
		keys map[string]string
		want string // in the error
	}{
		{"gs:///db", nil, "no bucket"},
		{"s3://bucket/db", nil, `scheme "s3"`},
		{"gs://Bucket/db", nil, `"Bucket" is not a valid bucket name`},
		{"gs://ab/db", nil, "not a valid bucket name"},
		{"gs://-bucket/db", nil, "not a valid bucket name"},
		{"gs://bucket/db", map[string]string{"bucket": "a/b"}, "not a valid bucket name"},
		{"gs://user:hunter2@bucket/db", nil, "must not contain a user name or password"},
		{"gs://bucket/db", map[string]string{"endpoint": "127.0.0.1:4443"}, "is not an http or https URL"},
		{"gs://bucket/db", map[string]string{"endpoint": "ftp://host"}, "is not an http or https URL"},
		{"gs://bucket/db", map[string]string{"endpoint": "http://user:hunter2@host"}, "must not contain a user name or password"},
		{"gs://bucket/db", map[string]string{"endpoint": "http://host/?key=hunter2"}, "must not have a query"},
		{"gs://bucket/db", map[string]string{"part-size": "lots"}, "part-size"},
		{"gs://bucket/db", map[string]string{"part-size": "100KiB"}, "part-size 102400 is out of range"},
		{"gs://bucket/db", map[string]string{"part-size": "2GiB"}, "out of range"},
		{"gs://bucket/db", map[string]string{"skip-verify": "maybe"}, "skip-verify"},
		{"gs://bucket/db", map[string]string{"skip-verify": "true"}, "skip-verify applies only to an https endpoint"},
		{"gs://bucket/db", map[string]string{"skip-verify": "true", "endpoint": "http://127.0.0.1:1"}, "only to an https endpoint"},
	}
	for _, tt := range tests {
		_, err := parseSpec(spec(t, tt.url, tt.keys))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %v: error %v; want one containing %q", tt.url, tt.keys, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s %v: the error shows the secret: %v", tt.url, tt.keys, err)
		}
	}
}

func TestParseSpecEmulatorHostAllowsSkipVerify(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", "https://127.0.0.1:4443")
	c, err := parseSpec(spec(t, "gs://bucket/db?skip-verify=true", nil))
	if err != nil || !c.skipVerify {
		t.Fatalf("skip-verify with an https STORAGE_EMULATOR_HOST: %+v, %v", c, err)
	}
}

func TestObjectName(t *testing.T) {
	for _, tt := range []struct {
		prefix string
		level  int
		want   string
	}{
		{"", 0, "ltx/0/0000000000000001-00000000000000ff.ltx"},
		{"db", 9, "db/ltx/9/0000000000000001-00000000000000ff.ltx"},
		{"a/b", 3, "a/b/ltx/3/0000000000000001-00000000000000ff.ltx"},
	} {
		c := &Client{bucket: "b", prefix: tt.prefix}
		if got := c.ObjectName(tt.level, 1, 0xff); got != tt.want {
			t.Errorf("prefix %q level %d: %s; want %s", tt.prefix, tt.level, got, tt.want)
		}
	}
}
