package s3

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/walship/walship/storage"
)

// An oss:// replica is an S3 client of OSS's S3-compatible endpoint for
// its region: virtual-hosted, with no aws-chunked checksums, as OSS needs.
func TestParseOSSSpec(t *testing.T) {
	creds := map[string]string{"access-key-id": "id", "secret-access-key": "secret"}
	with := func(extra map[string]string) map[string]string {
		k := map[string]string{}
		for n, v := range creds {
			k[n] = v
		}
		for n, v := range extra {
			k[n] = v
		}
		return k
	}
	tests := []struct {
		name, url      string
		keys           map[string]string
		bucket, prefix string
		endpoint       string
		region         string
	}{
		{"default region, as Litestream's", "oss://bkt/db", creds, "bkt", "db", "https://s3.oss-cn-hangzhou.aliyuncs.com", "cn-hangzhou"},
		{"region key", "oss://bkt/a/b", with(map[string]string{"region": "cn-shanghai"}), "bkt", "a/b", "https://s3.oss-cn-shanghai.aliyuncs.com", "cn-shanghai"},
		{"region in the host", "oss://bkt.oss-eu-central-1.aliyuncs.com/db", creds, "bkt", "db", "https://s3.oss-eu-central-1.aliyuncs.com", "eu-central-1"},
		{"internal host", "oss://bkt.oss-cn-beijing-internal.aliyuncs.com/db", creds, "bkt", "db", "https://s3.oss-cn-beijing-internal.aliyuncs.com", "cn-beijing"},
		{"native endpoint in the query, as Litestream's docs write it", "oss://bkt/db?endpoint=oss-ap-southeast-1.aliyuncs.com", creds, "bkt", "db", "https://s3.oss-ap-southeast-1.aliyuncs.com", "ap-southeast-1"},
		{"S3-compatible endpoint key", "oss://bkt/db", with(map[string]string{"endpoint": "https://s3.oss-us-west-1.aliyuncs.com"}), "bkt", "db", "https://s3.oss-us-west-1.aliyuncs.com", "us-west-1"},
		{"region key wins over the endpoint's", "oss://bkt/db", with(map[string]string{"endpoint": "oss-cn-shenzhen.aliyuncs.com", "region": "cn-shenzhen"}), "bkt", "db", "https://s3.oss-cn-shenzhen.aliyuncs.com", "cn-shenzhen"},
		{"custom domain kept", "oss://bkt/db", with(map[string]string{"endpoint": "https://oss.example.com", "region": "cn-qingdao"}), "bkt", "db", "https://oss.example.com", "cn-qingdao"},
		{"bucket and path keys", "oss:", with(map[string]string{"bucket": "bkt", "path": "/x/"}), "bkt", "x", "https://s3.oss-cn-hangzhou.aliyuncs.com", "cn-hangzhou"},
		{"access-key-secret, Alibaba's name", "oss://bkt/db", map[string]string{"access-key-id": "id", "access-key-secret": "secret"}, "bkt", "db", "https://s3.oss-cn-hangzhou.aliyuncs.com", "cn-hangzhou"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOSSSpec(storage.Spec{URL: mustURL(t, tt.url), Keys: tt.keys}, noEnv)
			if err != nil {
				t.Fatal(err)
			}
			if o.bucket != tt.bucket || o.prefix != tt.prefix || o.endpoint != tt.endpoint || o.region != tt.region {
				t.Errorf("bucket %q prefix %q endpoint %q region %q; want %q %q %q %q", o.bucket, o.prefix, o.endpoint, o.region, tt.bucket, tt.prefix, tt.endpoint, tt.region)
			}
			if o.forcePathStyle || o.checksums != ChecksumsWhenRequired || o.scheme != OSSType {
				t.Errorf("path style %v, checksums %q, scheme %q; want virtual-hosted, %s, oss", o.forcePathStyle, o.checksums, o.scheme, ChecksumsWhenRequired)
			}
			if o.accessKeyID != "id" || o.secretAccessKey != "secret" {
				t.Errorf("credentials %q/%q", o.accessKeyID, o.secretAccessKey)
			}
		})
	}
}

func TestParseOSSSpecCredentials(t *testing.T) {
	env := map[string]string{EnvOSSAccessKeyID: "env-id", EnvOSSAccessKeySecret: "env-secret", EnvOSSSessionToken: "env-token",
		// Not read for OSS: Litestream's OSS client does not either.
		"WALSHIP_ACCESS_KEY_ID": "w", "WALSHIP_SECRET_ACCESS_KEY": "w", "LITESTREAM_ACCESS_KEY_ID": "l", "LITESTREAM_SECRET_ACCESS_KEY": "l"}
	getenv := func(k string) string { return env[k] }
	o, err := parseOSSSpec(storage.Spec{URL: mustURL(t, "oss://bkt/db"), Keys: map[string]string{"access-key-id": "id", "secret-access-key": "secret"}}, getenv)
	if err != nil || o.accessKeyID != "id" || o.sessionToken != "" || !strings.Contains(o.creds, "config keys") {
		t.Fatalf("keys: %+v, %v", o, err)
	}
	o, err = parseOSSSpec(storage.Spec{URL: mustURL(t, "oss://bkt/db")}, getenv)
	if err != nil || o.accessKeyID != "env-id" || o.secretAccessKey != "env-secret" || o.sessionToken != "env-token" || !strings.Contains(o.creds, EnvOSSAccessKeyID) {
		t.Fatalf("environment: %+v, %v", o, err)
	}
	delete(env, EnvOSSAccessKeyID)
	delete(env, EnvOSSAccessKeySecret)
	env["LITESTREAM_OSS_ACCESS_KEY_ID"], env["LITESTREAM_OSS_ACCESS_KEY_SECRET"] = "doc-id", "doc-secret"
	o, err = parseOSSSpec(storage.Spec{URL: mustURL(t, "oss://bkt/db")}, getenv)
	if err != nil || o.accessKeyID != "doc-id" || o.secretAccessKey != "doc-secret" || o.sessionToken != "" {
		t.Fatalf("Litestream's documented names: %+v, %v", o, err)
	}
	_, err = parseOSSSpec(storage.Spec{URL: mustURL(t, "oss://bkt/db")}, noEnv)
	if err == nil || !strings.Contains(err.Error(), "oss replica has no credentials") {
		t.Fatalf("none: %v", err)
	}
}

func TestParseOSSSpecErrors(t *testing.T) {
	const secret = "s3cr3t-never-shown"
	keys := map[string]string{"access-key-id": "id", "secret-access-key": secret}
	for _, tt := range []struct {
		url  string
		keys map[string]string
		want string
	}{
		{"oss:", keys, "oss replica has no bucket"},
		{"oss://bkt", keys, "oss replica has no path: a replica at the top of bucket \"bkt\" is not supported: give it a path, e.g. url: oss://bkt/DBNAME"},
		{"oss://id:" + secret + "@bkt/db", nil, "must not contain credentials"},
		{"oss://bkt/db?secret-access-key=" + secret, keys, "oss replica URL has secret-access-key in its query"},
		{"oss://bkt/db", map[string]string{"access-key-id": "id"}, "access-key-id is set but secret-access-key is not"},
		{"oss://bkt/db", map[string]string{"access-key-id": "id", "secret-access-key": secret, "bucket": "other"}, `bucket "bkt" in the URL and bucket: "other" differ`},
		{"oss://bkt/db", map[string]string{"access-key-id": "id", "secret-access-key": secret, "part-size": "1KiB"}, "oss replica: part-size"},
	} {
		_, err := parseOSSSpec(storage.Spec{URL: mustURL(t, tt.url), Keys: tt.keys}, noEnv)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %v: error %v; want %q", tt.url, tt.keys, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the secret shows: %v", tt.url, err)
		}
	}
}

// The requests of an oss:// replica go to BUCKET.s3.oss-REGION.aliyuncs.com
// signed for REGION. The transport answers them itself: nothing leaves the
// machine.
func TestOSSAddressing(t *testing.T) {
	var mu sync.Mutex
	var reqs []*http.Request
	h := hooks{transport: func(http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			reqs = append(reqs, r)
			mu.Unlock()
			return &http.Response{
				StatusCode: http.StatusForbidden,
				Header:     http.Header{"Content-Type": {"application/xml"}},
				Body:       io.NopCloser(strings.NewReader(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>denied</Message></Error>`)),
				Request:    r,
			}, nil
		})
	}}
	spec := storage.Spec{URL: mustURL(t, "oss://my-bucket.oss-cn-shanghai.aliyuncs.com/app/db"), Keys: map[string]string{"access-key-id": "id", "access-key-secret": "secret"}}
	o, err := parseOSSSpec(spec, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := openOptions(context.Background(), spec, o, h)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.String(); got != "oss://my-bucket/app/db" {
		t.Errorf("String() = %q", got)
	}
	_, err = c.LTXFiles(context.Background(), 0)
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") || !strings.Contains(err.Error(), "oss://my-bucket/app/db") {
		t.Fatalf("listing: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) == 0 {
		t.Fatal("no request")
	}
	r := reqs[0]
	if r.URL.Scheme != "https" || r.URL.Host != "my-bucket.s3.oss-cn-shanghai.aliyuncs.com" || strings.HasPrefix(r.URL.Path, "/my-bucket") {
		t.Errorf("request to %s; want https://my-bucket.s3.oss-cn-shanghai.aliyuncs.com/ (virtual-hosted)", r.URL)
	}
	if auth := r.Header.Get("Authorization"); !strings.Contains(auth, "/cn-shanghai/s3/aws4_request") || !strings.Contains(auth, "Credential=id/") {
		t.Errorf("Authorization %q; want it signed by id for cn-shanghai", auth)
	}
}
