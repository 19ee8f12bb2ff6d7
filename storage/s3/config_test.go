package s3

import (
	"crypto/md5"
	"encoding/base64"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

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

func noEnv(string) string { return "" }

func TestParseSpec(t *testing.T) {
	tests := []struct {
		name string
		url  string
		keys map[string]string
		want options // compared field by field below; sse and credentials are tested apart
	}{
		{
			name: "AWS",
			url:  "s3://my-bucket/db/main",
			want: options{bucket: "my-bucket", prefix: "db/main", partSize: DefaultPartSize, concurrency: DefaultConcurrency},
		},
		{
			name: "AWS with region",
			url:  "s3://my-bucket/db?region=eu-west-1",
			want: options{bucket: "my-bucket", prefix: "db", region: "eu-west-1", partSize: DefaultPartSize, concurrency: DefaultConcurrency},
		},
		{
			name: "endpoint in the URL: path style, us-east-1, checksums when required",
			url:  "s3://b/p/?endpoint=http://127.0.0.1:9000",
			want: options{bucket: "b", prefix: "p", endpoint: "http://127.0.0.1:9000", region: "us-east-1", forcePathStyle: true, partSize: DefaultPartSize, concurrency: DefaultConcurrency, checksums: ChecksumsWhenRequired},
		},
		{
			name: "endpoint without scheme is https",
			url:  "s3://b/p",
			keys: map[string]string{"endpoint": "abc123.r2.cloudflarestorage.com/", "region": "auto"},
			want: options{bucket: "b", prefix: "p", endpoint: "https://abc123.r2.cloudflarestorage.com", region: "auto", forcePathStyle: true, partSize: DefaultPartSize, concurrency: DefaultConcurrency, checksums: ChecksumsWhenRequired},
		},
		{
			name: "keys override query parameters",
			url:  "s3://b/p?endpoint=http://a:1&region=r1&forcePathStyle=true&skipVerify=false",
			keys: map[string]string{"endpoint": "http://b:2", "region": "r2", "force-path-style": "false", "skip-verify": "true", "part-size": "16MiB", "concurrency": "3", "checksums": "when-supported"},
			want: options{bucket: "b", prefix: "p", endpoint: "http://b:2", region: "r2", forcePathStyle: false, skipVerify: true, partSize: 16 << 20, concurrency: 3, checksums: ChecksumsWhenSupported},
		},
		{
			name: "kebab-case query parameters",
			url:  "s3://b/p?endpoint=http://a:1&force-path-style=false&skip-verify=true&part-size=10MB",
			want: options{bucket: "b", prefix: "p", endpoint: "http://a:1", region: "us-east-1", forcePathStyle: false, skipVerify: true, partSize: 10_000_000, concurrency: DefaultConcurrency, checksums: ChecksumsWhenRequired},
		},
		{
			name: "bucket and path keys with the equivalent URL",
			url:  "s3://b/x/y",
			keys: map[string]string{"bucket": "b", "path": "/x/y/"},
			want: options{bucket: "b", prefix: "x/y", partSize: DefaultPartSize, concurrency: DefaultConcurrency},
		},
		{
			name: "bucket and path keys alone",
			url:  "s3:",
			keys: map[string]string{"bucket": "b", "path": "x"},
			want: options{bucket: "b", prefix: "x", partSize: DefaultPartSize, concurrency: DefaultConcurrency},
		},
		{
			name: "Backblaze host form",
			url:  "s3://my-bucket.s3.us-west-004.backblazeb2.com/db",
			want: options{bucket: "my-bucket", prefix: "db", endpoint: "https://s3.us-west-004.backblazeb2.com", region: "us-west-004", forcePathStyle: true, partSize: DefaultPartSize, concurrency: DefaultConcurrency, checksums: ChecksumsWhenRequired},
		},
		{
			name: "Backblaze host form in the bucket key",
			url:  "s3://my-bucket.s3.us-west-004.backblazeb2.com/db",
			keys: map[string]string{"bucket": "my-bucket.s3.us-west-004.backblazeb2.com"},
			want: options{bucket: "my-bucket", prefix: "db", endpoint: "https://s3.us-west-004.backblazeb2.com", region: "us-west-004", forcePathStyle: true, partSize: DefaultPartSize, concurrency: DefaultConcurrency, checksums: ChecksumsWhenRequired},
		},
		{
			name: "DigitalOcean host form",
			url:  "s3://my-bucket.nyc3.digitaloceanspaces.com/db",
			want: options{bucket: "my-bucket", prefix: "db", endpoint: "https://nyc3.digitaloceanspaces.com", region: "nyc3", forcePathStyle: true, partSize: DefaultPartSize, concurrency: DefaultConcurrency, checksums: ChecksumsWhenRequired},
		},
		{
			name: "AWS host form",
			url:  "s3://my.bucket.s3.eu-central-1.amazonaws.com/db",
			want: options{bucket: "my.bucket", prefix: "db", region: "eu-central-1", partSize: DefaultPartSize, concurrency: DefaultConcurrency},
		},
		{
			name: "bucket with dots is a bucket",
			url:  "s3://backups.example.com/db",
			want: options{bucket: "backups.example.com", prefix: "db", partSize: DefaultPartSize, concurrency: DefaultConcurrency},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSpec(storage.Spec{URL: mustURL(t, tt.url), Keys: tt.keys}, noEnv)
			if err != nil {
				t.Fatal(err)
			}
			got.sse = sse{}
			tt.want.scheme = Type
			if *got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseSpecErrors(t *testing.T) {
	const secret = "s3cr3t-value-never-shown"
	tests := []struct {
		url  string
		keys map[string]string
		want string
	}{
		{"s3:", nil, "no bucket"},
		{"s3:///path", nil, "no bucket"},
		{"s3://b/p", map[string]string{"bucket": "other"}, `bucket "b" in the URL and bucket: "other" differ`},
		{"s3://b/p", map[string]string{"path": "q"}, `path "p" in the URL and path: "q" differ`},
		{"s3://AKIAX:" + secret + "@b/p", nil, "must not contain credentials"},
		{"s3://b/p", map[string]string{"endpoint": "https://key:" + secret + "@host"}, "must not contain credentials"},
		{"s3://b/p", map[string]string{"endpoint": "key:" + secret + "@host"}, "must not contain credentials"},
		{"s3://b/p", map[string]string{"endpoint": "ftp://host"}, `endpoint "ftp://host" is not a URL like https://s3.example.com`},
		// Endpoints are never echoed whole: url.Parse's own error quotes
		// the text, and a query may hold a signature or a key.
		{"s3://b/p", map[string]string{"endpoint": "https://host:" + secret}, "endpoint is not a URL like https://s3.example.com"},
		{"s3://b/p", map[string]string{"endpoint": "https://host/%zz" + secret}, "endpoint is not a URL"},
		{"s3://b/p", map[string]string{"endpoint": "https://host/s3?X-Amz-Signature=" + secret}, `endpoint "https://host/s3" must not have a query`},
		{"s3://b/p", map[string]string{"endpoint": "ftp://host/?key=" + secret}, "must not have a query"},
		{"s3://b/p", map[string]string{"endpoint": "https://host/#" + secret}, "must not have a query or fragment"},
		{"s3://b/p?endpoint=" + url.QueryEscape("http://u:"+secret+"@host"), nil, "must not contain credentials"},
		// A replica at the top of the bucket is refused (see TestNoPath).
		{"s3://b", nil, "s3 replica has no path"},
		{"s3://b/", nil, "give it a path, e.g. url: s3://b/DBNAME"},
		{"s3:", map[string]string{"bucket": "b"}, "no path"},
		{"s3://b//", map[string]string{"path": "/"}, "no path"},
		// Secrets in the query are refused, not ignored.
		{"s3://b/p?sse-customer-key=" + secret, nil, "sse-customer-key in its query"},
		{"s3://b/p?sseCustomerKey=" + secret, map[string]string{"sse-customer-key": strings.Repeat("k", 32)}, "set the sse-customer-key config key"},
		{"s3://b/p?access-key-id=AKIAX&secret-access-key=" + secret, nil, "in its query, where credentials are not read"},
		{"s3://b/p?secretAccessKey=" + secret, map[string]string{"access-key-id": "AKIAX", "secret-access-key": "y"}, "secret-access-key in its query"},
		{"s3://b/p?accessKeyId=AKIAX", nil, "access-key-id in its query"},
		{"s3://b/p?SECRET_ACCESS_KEY=" + secret, nil, "WALSHIP_SECRET_ACCESS_KEY in the environment"},
		{"s3://b/p?session-token=" + secret, nil, "session-token in its query, where credentials are not read: temporary credentials come from the AWS SDK"},
		{"s3://b/p", map[string]string{"part-size": "1MiB"}, "part-size: 1048576 bytes is outside S3's limits"},
		{"s3://b/p", map[string]string{"part-size": "lots"}, "part-size"},
		{"s3://b/p", map[string]string{"concurrency": "0"}, "concurrency"},
		{"s3://b/p", map[string]string{"concurrency": "1000"}, "too many"},
		{"s3://b/p", map[string]string{"force-path-style": "maybe"}, "force-path-style"},
		{"s3://b/p", map[string]string{"checksums": "always"}, `checksums: "always" is not when-required or when-supported`},
		{"s3://b/p", map[string]string{"access-key-id": "AKIAX"}, "access-key-id is set but secret-access-key is not"},
		{"s3://b/p", map[string]string{"secret-access-key": secret}, "secret-access-key is set but access-key-id is not"},
		{"s3://b/p", map[string]string{"sse-customer-key": secret}, "is not an AES-256 key"},
		{"s3://b/p", map[string]string{"sse-customer-key": strings.Repeat("k", 32), "sse-kms-key-id": "key"}, "choose one"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := parseSpec(storage.Spec{URL: mustURL(t, tt.url), Keys: tt.keys}, noEnv)
			if err == nil {
				t.Fatalf("%s %v: no error; want %q", tt.url, tt.keys, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q; want it to say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q shows the secret", err)
			}
		})
	}
	if _, err := parseSpec(storage.Spec{}, noEnv); err == nil || !strings.Contains(err.Error(), "no URL") {
		t.Fatalf("no URL: %v", err)
	}
}

func TestCredentialsOrder(t *testing.T) {
	env := map[string]string{
		"WALSHIP_ACCESS_KEY_ID":        "walship-id",
		"WALSHIP_SECRET_ACCESS_KEY":    "walship-secret",
		"LITESTREAM_ACCESS_KEY_ID":     "litestream-id",
		"LITESTREAM_SECRET_ACCESS_KEY": "litestream-secret",
	}
	getenv := func(k string) string { return env[k] }
	keys := map[string]string{"access-key-id": "key-id", "secret-access-key": "key-secret"}

	check := func(keys map[string]string, wantID, wantSecret, wantSource string) {
		t.Helper()
		o, err := parseSpec(storage.Spec{URL: mustURL(t, "s3://b/p"), Keys: keys}, getenv)
		if err != nil {
			t.Fatal(err)
		}
		if o.accessKeyID != wantID || o.secretAccessKey != wantSecret || !strings.Contains(o.creds, wantSource) {
			t.Fatalf("credentials %q from %q; want %q from %q", o.accessKeyID, o.creds, wantID, wantSource)
		}
	}
	check(keys, "key-id", "key-secret", "config keys")
	check(nil, "walship-id", "walship-secret", "WALSHIP_ACCESS_KEY_ID")
	delete(env, "WALSHIP_ACCESS_KEY_ID")
	delete(env, "WALSHIP_SECRET_ACCESS_KEY")
	check(nil, "litestream-id", "litestream-secret", "LITESTREAM_ACCESS_KEY_ID")

	// As Litestream reads them: each LITESTREAM_* variable stands in for
	// the AWS_* one of its name when that is not set.
	env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = "aws-id", "aws-secret"
	check(nil, "", "", "") // the SDK's default chain reads AWS_*
	delete(env, "AWS_SECRET_ACCESS_KEY")
	check(nil, "aws-id", "litestream-secret", "AWS_ACCESS_KEY_ID/LITESTREAM_SECRET_ACCESS_KEY")
	delete(env, "AWS_ACCESS_KEY_ID")
	delete(env, "LITESTREAM_ACCESS_KEY_ID")
	delete(env, "LITESTREAM_SECRET_ACCESS_KEY")
	check(nil, "", "", "") // the SDK's default chain

	env["LITESTREAM_ACCESS_KEY_ID"] = "litestream-id"
	_, err := parseSpec(storage.Spec{URL: mustURL(t, "s3://b/p")}, getenv)
	if err == nil || !strings.Contains(err.Error(), "LITESTREAM_ACCESS_KEY_ID is set but LITESTREAM_SECRET_ACCESS_KEY (or AWS_SECRET_ACCESS_KEY) is not") {
		t.Fatalf("half a Litestream pair: %v", err)
	}
	delete(env, "LITESTREAM_ACCESS_KEY_ID")

	env["WALSHIP_SECRET_ACCESS_KEY"] = "half"
	_, err = parseSpec(storage.Spec{URL: mustURL(t, "s3://b/p")}, getenv)
	if err == nil || !strings.Contains(err.Error(), "WALSHIP_SECRET_ACCESS_KEY is set but WALSHIP_ACCESS_KEY_ID is not") || strings.Contains(err.Error(), "half") {
		t.Fatalf("half a pair in the environment: %v", err)
	}
}

func TestParseSSECustomerKey(t *testing.T) {
	raw := []byte("0123456789abcdef0123456789ABCDEF")
	sum := md5.Sum(raw)
	wantKey, wantMD5 := base64.StdEncoding.EncodeToString(raw), base64.StdEncoding.EncodeToString(sum[:])

	// The same key, as base64 and as 32 raw characters.
	for _, given := range []string{wantKey, string(raw)} {
		s, err := parseSSE(given, "")
		if err != nil {
			t.Fatal(err)
		}
		var put s3.PutObjectInput
		s.putObject(&put)
		var get s3.GetObjectInput
		s.getObject(&get)
		var head s3.HeadObjectInput
		s.headObject(&head)
		for _, h := range [][3]*string{
			{put.SSECustomerAlgorithm, put.SSECustomerKey, put.SSECustomerKeyMD5},
			{get.SSECustomerAlgorithm, get.SSECustomerKey, get.SSECustomerKeyMD5},
			{head.SSECustomerAlgorithm, head.SSECustomerKey, head.SSECustomerKeyMD5},
		} {
			if aws.ToString(h[0]) != "AES256" || aws.ToString(h[1]) != wantKey || aws.ToString(h[2]) != wantMD5 {
				t.Fatalf("key %q: headers %q %q %q; want AES256 %q %q", given, aws.ToString(h[0]), aws.ToString(h[1]), aws.ToString(h[2]), wantKey, wantMD5)
			}
		}
		if put.ServerSideEncryption != "" {
			t.Fatalf("SSE-C upload also asks for %q", put.ServerSideEncryption)
		}
	}

	for _, bad := range []string{"short", base64.StdEncoding.EncodeToString(raw[:16]), string(raw) + "x"} {
		if _, err := parseSSE(bad, ""); err == nil {
			t.Fatalf("key %q accepted", bad)
		}
	}
}

func TestParseSSEKMS(t *testing.T) {
	s, err := parseSSE("", "arn:aws:kms:eu-west-1:111122223333:key/abc")
	if err != nil {
		t.Fatal(err)
	}
	var put s3.PutObjectInput
	s.putObject(&put)
	if put.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToString(put.SSEKMSKeyId) != "arn:aws:kms:eu-west-1:111122223333:key/abc" {
		t.Fatalf("SSE-KMS upload: %q %q", put.ServerSideEncryption, aws.ToString(put.SSEKMSKeyId))
	}
	var get s3.GetObjectInput
	s.getObject(&get)
	if get.SSECustomerKey != nil {
		t.Fatal("SSE-KMS download sends a customer key")
	}
	var none s3.PutObjectInput
	sse{}.putObject(&none)
	if none.ServerSideEncryption != "" || none.SSECustomerKey != nil {
		t.Fatal("no encryption configured, but the upload asks for some")
	}
}

// The SSE-C key may come from a file, as Litestream's sse-customer-key-path
// allows; the file wins over sse-customer-key, as in Litestream.
func TestSSECustomerKeyPath(t *testing.T) {
	raw := []byte("0123456789abcdef0123456789ABCDEF")
	key := base64.StdEncoding.EncodeToString(raw)
	path := filepath.Join(t.TempDir(), "sse.key")
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := parseSSE(key, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, keys := range []map[string]string{
		{"sse-customer-key-path": path},
		{"sse-customer-key-path": path, "sse-customer-key": strings.Repeat("x", 32), "sse-customer-algorithm": "aes256"},
	} {
		o, err := parseSpec(storage.Spec{URL: mustURL(t, "s3://b/p"), Keys: keys, Logger: slog.New(slog.DiscardHandler)}, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if o.sse != want {
			t.Fatalf("%v: key from the file not used", keys)
		}
	}
	for keys, wantErr := range map[*map[string]string]string{
		{"sse-customer-key-path": path + ".missing"}:                        "sse-customer-key-path: cannot read the key",
		{"sse-customer-key-path": path, "sse-customer-algorithm": "AES128"}: `sse-customer-algorithm: "AES128" is not AES256`,
		{"storage-class": "STANDARD IA"}:                                    "storage-class",
	} {
		_, err := parseSpec(storage.Spec{URL: mustURL(t, "s3://b/p"), Keys: *keys}, noEnv)
		if err == nil || !strings.Contains(err.Error(), wantErr) || strings.Contains(err.Error(), key) {
			t.Errorf("%v: error %v; want %q", *keys, err, wantErr)
		}
	}
}

func TestStorageClassOption(t *testing.T) {
	for _, tt := range []struct {
		url  string
		keys map[string]string
		want string
	}{
		{"s3://b/p", nil, ""},
		{"s3://b/p", map[string]string{"storage-class": "standard_ia"}, "STANDARD_IA"},
		{"s3://b/p?storageClass=GLACIER_IR", nil, "GLACIER_IR"},
		{"s3://b/p?storage-class=ONEZONE_IA", map[string]string{"storage-class": "INTELLIGENT_TIERING"}, "INTELLIGENT_TIERING"},
	} {
		o, err := parseSpec(storage.Spec{URL: mustURL(t, tt.url), Keys: tt.keys}, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if o.storageClass != tt.want {
			t.Errorf("%s %v: storage class %q, want %q", tt.url, tt.keys, o.storageClass, tt.want)
		}
	}
}
