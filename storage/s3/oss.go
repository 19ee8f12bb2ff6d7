package s3

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/walship/walship/storage"
)

// OSSType is the URL scheme, and replica type, of Alibaba Cloud OSS.
const OSSType = "oss"

// OSSDefaultRegion is the region of an OSS replica that names none, as in
// Litestream.
const OSSDefaultRegion = "cn-hangzhou"

// Environment variables that hold OSS credentials, as Alibaba's SDKs (and so
// Litestream) read them.
const (
	EnvOSSAccessKeyID     = "OSS_ACCESS_KEY_ID"
	EnvOSSAccessKeySecret = "OSS_ACCESS_KEY_SECRET"
	EnvOSSSessionToken    = "OSS_SESSION_TOKEN"
)

// OSSBackend declares Alibaba Cloud OSS: oss://BUCKET/PATH, with the layout
// Litestream 0.5 gives OSS replicas (the S3 one), reached through OSS's
// S3-compatible API with this package's client.
//
// The endpoint is https://s3.oss-REGION.aliyuncs.com (the -internal one
// for a URL host BUCKET.oss-REGION-internal.aliyuncs.com), with requests
// addressed to BUCKET.s3.oss-REGION.aliyuncs.com, the virtual-hosted style
// OSS requires, signed for REGION, and checksums sent only where S3
// requires them (OSS takes no aws-chunked bodies). The region is the
// region key, else the one in the URL's host (BUCKET.oss-REGION.aliyuncs.com)
// or in the endpoint key, else cn-hangzhou, as in Litestream. An endpoint
// key naming OSS's own API (oss-REGION.aliyuncs.com, as Litestream's
// documentation writes it) is turned into the S3-compatible one of its
// region; any other endpoint (a custom domain) is used as given.
//
// Credentials: access-key-id with secret-access-key (or access-key-secret,
// Alibaba's name, which Litestream's documentation uses), else
// OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET (and OSS_SESSION_TOKEN), as
// Litestream's OSS client reads them, else LITESTREAM_OSS_ACCESS_KEY_ID and
// LITESTREAM_OSS_ACCESS_KEY_SECRET, the names Litestream's documentation
// gives; there is no other source.
var OSSBackend = storage.Backend{
	Schemes: []string{OSSType},
	Form:    "oss://BUCKET/PATH",
	Keys: []string{"bucket", "access-key-id", "secret-access-key", "access-key-secret", "region", "endpoint",
		"part-size", "concurrency", "conditional-writes"},
	FromKeys: storage.BucketURL(OSSType, false),
	Open:     storage.OpenClient(OpenOSS),
}

// OpenOSS returns a client for an oss:// destination (see [OSSBackend]).
// It makes no request.
func OpenOSS(ctx context.Context, spec storage.Spec) (*Client, error) {
	o, err := parseOSSSpec(spec, os.Getenv)
	if err != nil {
		return nil, err
	}
	return openOptions(ctx, spec, o, hooks{})
}

// ossHostRE matches OSS's hosts: [BUCKET.]oss-REGION[-internal].aliyuncs.com,
// and the S3-compatible s3.oss-REGION[-internal].aliyuncs.com.
var ossHostRE = regexp.MustCompile(`^(?:([^.]+)\.)?oss-(.+?)(-internal)?\.aliyuncs\.com$`)

// parseOSSHost returns the bucket and the region of an oss:// URL host or
// bucket key, and whether it names the internal endpoint.
func parseOSSHost(host string) (bucket, region string, internal bool) {
	if m := ossHostRE.FindStringSubmatch(strings.ToLower(host)); m != nil {
		return m[1], m[2], m[3] != ""
	}
	return host, "", false
}

// ossEndpoint returns the S3-compatible endpoint for the endpoint key as
// written ("" for none), and the region it names, if any.
func ossEndpoint(raw, region string, internal bool) (endpoint, endpointRegion string, err error) {
	suffix := ""
	if internal {
		suffix = "-internal"
	}
	if strings.TrimSpace(raw) == "" {
		return "https://s3.oss-" + region + suffix + ".aliyuncs.com", "", nil
	}
	e, err := normalizeEndpoint(raw)
	if err != nil {
		return "", "", err
	}
	u, err := url.Parse(e)
	if err != nil {
		return "", "", err
	}
	m := ossHostRE.FindStringSubmatch(strings.ToLower(u.Hostname()))
	if m == nil || (m[1] != "" && m[1] != "s3") {
		return e, "", nil // a custom domain, used as given
	}
	r := m[2]
	if m[3] != "" {
		suffix = "-internal"
	}
	if strings.HasPrefix(r, "accelerate") { // transfer acceleration: no region
		u.Host = "s3.oss-" + r + ".aliyuncs.com"
		return u.String(), "", nil
	}
	u.Host = "s3.oss-" + r + suffix + ".aliyuncs.com"
	if p := u.Port(); p != "" {
		u.Host += ":" + p
	}
	return u.String(), r, nil
}

// parseOSSSpec reads an oss:// replica's settings and turns them into the
// S3 client's, with getenv for the environment's credentials.
func parseOSSSpec(spec storage.Spec, getenv func(string) string) (*options, error) {
	if spec.URL == nil {
		return nil, errors.New("oss replica has no URL: use url: oss://BUCKET/PATH, or bucket: and path:")
	}
	if spec.URL.User != nil {
		return nil, errors.New("oss replica URL must not contain credentials: use the access-key-id and secret-access-key keys, or OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET")
	}
	if err := checkQuerySecrets(spec.URL); err != nil {
		return nil, errors.New(strings.Replace(err.Error(), "s3 replica", "oss replica", 1))
	}
	bucket, hostRegion, internal := parseOSSHost(spec.URL.Host)
	if b := spec.Keys["bucket"]; b != "" {
		kb, kr, ki := parseOSSHost(b)
		if bucket != "" && bucket != kb {
			return nil, fmt.Errorf("oss replica: bucket %q in the URL and bucket: %q differ: give it once", bucket, b)
		}
		bucket, hostRegion, internal = kb, cmp.Or(hostRegion, kr), internal || ki
	}
	if bucket == "" {
		return nil, errors.New("oss replica has no bucket: use url: oss://BUCKET/PATH, or the bucket: key")
	}
	prefix := strings.Trim(cmp.Or(spec.Keys["path"], spec.URL.Path), "/")
	if prefix == "" {
		// See parseSpec: Litestream's objects at the top of a bucket are
		// named "/0000/...", which S3-compatible stores do not keep.
		return nil, fmt.Errorf("oss replica has no path: a replica at the top of bucket %q is not supported: give it a path, e.g. url: oss://%s/DBNAME", bucket, bucket)
	}

	region := cmp.Or(spec.Option("region", "region"), hostRegion)
	endpoint, endpointRegion, err := ossEndpoint(spec.Option("endpoint", "endpoint"), cmp.Or(region, OSSDefaultRegion), internal)
	if err != nil {
		return nil, fmt.Errorf("oss replica: %w", err)
	}
	region = cmp.Or(region, endpointRegion, OSSDefaultRegion)
	if spec.Option("endpoint", "endpoint") == "" {
		endpoint, _, _ = ossEndpoint("", region, internal)
	}

	keys := map[string]string{
		"path":             prefix,
		"endpoint":         endpoint,
		"region":           region,
		"force-path-style": "false", // OSS takes only virtual-hosted requests
		"checksums":        ChecksumsWhenRequired,
	}
	for _, k := range []string{"part-size", "concurrency", "conditional-writes"} {
		if v := spec.Option(k, k); v != "" {
			keys[k] = v
		}
	}
	source, id, secret, err := credentialPair("config keys", "access-key-id", spec.Keys["access-key-id"],
		"secret-access-key", cmp.Or(spec.Keys["secret-access-key"], spec.Keys["access-key-secret"]))
	token := ""
	if source == "" && err == nil {
		source, id, secret, err = credentialPair("environment", EnvOSSAccessKeyID, getenv(EnvOSSAccessKeyID), EnvOSSAccessKeySecret, getenv(EnvOSSAccessKeySecret))
		token = getenv(EnvOSSSessionToken)
	}
	if source == "" && err == nil {
		// The names Litestream's documentation gives (its OSS client reads
		// only the above).
		source, id, secret, err = credentialPair("environment", "LITESTREAM_OSS_ACCESS_KEY_ID", getenv("LITESTREAM_OSS_ACCESS_KEY_ID"), "LITESTREAM_OSS_ACCESS_KEY_SECRET", getenv("LITESTREAM_OSS_ACCESS_KEY_SECRET"))
		token = ""
	}
	switch {
	case err != nil:
		return nil, fmt.Errorf("oss replica: %w", err)
	case source == "":
		return nil, fmt.Errorf("oss replica has no credentials: set access-key-id and secret-access-key, or %s and %s in the environment", EnvOSSAccessKeyID, EnvOSSAccessKeySecret)
	}

	s3spec := storage.Spec{URL: &url.URL{Scheme: OSSType, Host: bucket}, Keys: keys, Logger: spec.Logger}
	o, err := parseSpec(s3spec, func(string) string { return "" })
	if err != nil {
		return nil, err
	}
	o.creds, o.accessKeyID, o.secretAccessKey, o.sessionToken = source, id, secret, token
	return o, nil
}
