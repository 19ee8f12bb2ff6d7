package s3

import (
	"cmp"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/walship/walship/storage"
)

// Defaults and limits of the config keys.
const (
	// DefaultRegion is the region used with an endpoint and no region, and
	// the last resort on AWS.
	DefaultRegion = "us-east-1"

	// DefaultPartSize is the size of the parts of a multipart upload, and
	// the largest file sent in one PUT. MinPartSize and MaxPartSize are the
	// limits S3 puts on parts.
	DefaultPartSize = 5 << 20
	MinPartSize     = 5 << 20
	MaxPartSize     = 5 << 30

	// DefaultConcurrency is how many parts of one multipart upload are in
	// flight at once; MaxConcurrency bounds the concurrency key.
	DefaultConcurrency = 5
	MaxConcurrency     = 64
)

// Values of the checksums key.
const (
	// ChecksumsWhenRequired sends a request checksum only where the S3 API
	// requires one, and validates response checksums only when asked: what
	// S3-compatible stores understand. The default with an endpoint.
	ChecksumsWhenRequired = "when-required"

	// ChecksumsWhenSupported is the AWS SDK's own default (CRC checksums on
	// every upload, and trailing checksums in aws-chunked bodies over TLS,
	// validated on download). The default on AWS itself.
	ChecksumsWhenSupported = "when-supported"
)

// options are the parsed settings of one replica.
type options struct {
	bucket, prefix string

	endpoint       string // "" on AWS; else a URL with a scheme, no trailing slash
	region         string // "" = from the SDK's configuration or looked up
	forcePathStyle bool
	skipVerify     bool
	// unconditional is conditional-writes: false, for a store without
	// them: records are then read, compared and written, which is not
	// atomic (see WriteRecord).
	unconditional bool
	partSize      int64
	concurrency   int
	checksums     string // "" = the SDK's default (AWS), else a Checksums* value

	sse sse
	// storageClass is the storage class of the LTX files uploaded ("" =
	// the bucket's default).
	storageClass string

	// creds names where static credentials come from ("" = the SDK's
	// default chain); accessKeyID, secretAccessKey and sessionToken hold
	// them.
	creds                                      string
	accessKeyID, secretAccessKey, sessionToken string

	// scheme is the URL scheme the replica was given with: "s3", or "oss"
	// for Alibaba OSS through its S3-compatible API.
	scheme string
}

// parseSpec reads a replica's settings from its URL and config keys, with
// getenv for the environment's credentials.
func parseSpec(spec storage.Spec, getenv func(string) string) (*options, error) {
	if spec.URL == nil {
		return nil, errors.New("s3 replica has no URL: use url: s3://BUCKET/PATH, or bucket: and path:")
	}
	if spec.URL.User != nil {
		// Never echo the URL here: it holds what looks like credentials.
		return nil, errors.New("s3 replica URL must not contain credentials: use the access-key-id and secret-access-key keys or the environment")
	}
	o := &options{scheme: cmp.Or(strings.ToLower(spec.URL.Scheme), Type)}

	// Bucket and path: from the URL, or from the bucket and path keys; a
	// host of a known provider carries the bucket, region and endpoint.
	host := spec.URL.Host
	var hostRegion, hostEndpoint string
	if host != "" {
		o.bucket, hostRegion, hostEndpoint = parseHost(host)
	}
	if b := spec.Keys["bucket"]; b != "" {
		bucket, region, endpoint := parseHost(b)
		if o.bucket != "" && o.bucket != bucket {
			return nil, fmt.Errorf("s3 replica: bucket %q in the URL and bucket: %q differ: give it once", o.bucket, b)
		}
		o.bucket, hostRegion, hostEndpoint = bucket, cmp.Or(hostRegion, region), cmp.Or(hostEndpoint, endpoint)
	}
	if o.bucket == "" {
		return nil, errors.New("s3 replica has no bucket: use url: s3://BUCKET/PATH, or the bucket: key")
	}
	if strings.ContainsAny(o.bucket, "/ \t") {
		return nil, fmt.Errorf("s3 replica: %q is not a bucket name", o.bucket)
	}
	o.prefix = strings.Trim(spec.URL.Path, "/")
	if p := strings.Trim(spec.Keys["path"], "/"); p != "" {
		if o.prefix != "" && o.prefix != p {
			return nil, fmt.Errorf("s3 replica: path %q in the URL and path: %q differ: give it once", o.prefix, p)
		}
		o.prefix = p
	}
	if o.prefix == "" {
		// Litestream 0.5 names the objects of a replica without a path
		// "/<level>/...", with a leading slash. S3-compatible stores such
		// as MinIO drop that slash when they store an object, but not
		// from a listing's prefix, so Litestream cannot list what it wrote
		// there; on AWS the keys keep the slash. No layout is compatible
		// with both, so a replica must have a path.
		return nil, fmt.Errorf("s3 replica has no path: a replica at the top of bucket %q is not supported (Litestream's layout there differs between AWS and S3-compatible stores): "+
			"give it a path, e.g. url: s3://%s/DBNAME, or path: DBNAME", o.bucket, o.bucket)
	}
	if err := checkQuerySecrets(spec.URL); err != nil {
		return nil, err
	}
	// The caller names the replica in its own message.
	errorf := func(format string, args ...any) error {
		return fmt.Errorf(o.scheme+" replica: "+format, args...)
	}

	var err error
	endpoint := spec.Option("endpoint", "endpoint")
	if endpoint == "" {
		endpoint = hostEndpoint
	}
	if o.endpoint, err = normalizeEndpoint(endpoint); err != nil {
		return nil, errorf("%w", err)
	}
	o.region = spec.Option("region", "region")
	if o.region == "" {
		o.region = hostRegion
	}
	if o.region == "" && o.endpoint != "" {
		o.region = DefaultRegion
	}
	if o.forcePathStyle, err = spec.BoolOption(o.endpoint != "", "force-path-style", "forcePathStyle", "force-path-style"); err != nil {
		return nil, errorf("%w", err)
	}
	if o.skipVerify, err = spec.BoolOption(false, "skip-verify", "skipVerify", "skip-verify"); err != nil {
		return nil, errorf("%w", err)
	}
	conditional, err := spec.BoolOption(true, "conditional-writes", "conditionalWrites", "conditional-writes")
	if err != nil {
		return nil, errorf("%w", err)
	}
	o.unconditional = !conditional
	if o.partSize, err = spec.SizeOption(DefaultPartSize, "part-size", "partSize", "part-size"); err != nil {
		return nil, errorf("%w", err)
	}
	if o.partSize < MinPartSize || o.partSize > MaxPartSize {
		return nil, errorf("part-size: %d bytes is outside S3's limits for a part: use 5MiB to 5GiB", o.partSize)
	}
	if o.concurrency, err = spec.IntOption(DefaultConcurrency, "concurrency", "concurrency"); err != nil {
		return nil, errorf("%w", err)
	}
	if o.concurrency > MaxConcurrency {
		return nil, errorf("concurrency: %d parts at once is too many: use 1 to %d", o.concurrency, MaxConcurrency)
	}

	switch v := strings.ToLower(spec.Option("checksums", "checksums")); v {
	case "":
		if o.endpoint != "" {
			o.checksums = ChecksumsWhenRequired
		}
	case ChecksumsWhenRequired, ChecksumsWhenSupported:
		o.checksums = v
	default:
		return nil, errorf("checksums: %q is not %s or %s", v, ChecksumsWhenRequired, ChecksumsWhenSupported)
	}

	// Encryption keys are read from config keys only, never from the URL,
	// which ends up in logs.
	customerKey, err := sseCustomerKey(spec)
	if err != nil {
		return nil, errorf("%w", err)
	}
	if o.sse, err = parseSSE(customerKey, spec.Option("sse-kms-key-id", "sseKmsKeyId", "sse-kms-key-id")); err != nil {
		return nil, errorf("%w", err)
	}
	if a := strings.TrimSpace(spec.Keys["sse-customer-algorithm"]); a != "" && !strings.EqualFold(a, "AES256") {
		return nil, errorf("sse-customer-algorithm: %q is not AES256, the one algorithm S3 has for customer keys: remove it or write AES256", a)
	}
	if o.storageClass, err = storageClass(spec); err != nil {
		return nil, errorf("%w", err)
	}

	if o.creds, o.accessKeyID, o.secretAccessKey, o.sessionToken, err = staticCredentials(spec.Keys, getenv); err != nil {
		return nil, errorf("%w", err)
	}
	return o, nil
}

// storageClass reads the storage-class key (or the storageClass URL
// parameter, as Litestream does): any class the store knows, in upper
// case as S3 names them.
func storageClass(spec storage.Spec) (string, error) {
	class := strings.ToUpper(strings.TrimSpace(spec.Option("storage-class", "storageClass", "storage-class")))
	for _, c := range class {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return "", fmt.Errorf("storage-class: %q is not a storage class name such as STANDARD or STANDARD_IA", class)
		}
	}
	switch class {
	case "GLACIER", "DEEP_ARCHIVE":
		// As Litestream does, the class is passed on; but such objects
		// cannot be read without restoring them first.
		spec.Log().Warn("storage-class "+class+" keeps files that walship cannot read back without restoring them first: compaction, verification and restores of this replica fail; use STANDARD, STANDARD_IA, GLACIER_IR or INTELLIGENT_TIERING", "storage_class", class)
	}
	return class, nil
}

// sseCustomerKey returns the SSE-C key as configured: the contents of the
// file named by sse-customer-key-path, trimmed, which wins over
// sse-customer-key as in Litestream; else sse-customer-key.
func sseCustomerKey(spec storage.Spec) (string, error) {
	p := strings.TrimSpace(spec.Keys["sse-customer-key-path"])
	if p == "" {
		return spec.Keys["sse-customer-key"], nil
	}
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("sse-customer-key-path: cannot expand \"~\": %w", err)
		}
		p = filepath.Join(home, p[1:])
	}
	data, err := os.ReadFile(p)
	if err != nil {
		// The path, never the key.
		return "", fmt.Errorf("sse-customer-key-path: cannot read the key: %w", err)
	}
	if spec.Keys["sse-customer-key"] != "" {
		spec.Log().Warn("sse-customer-key is ignored: sse-customer-key-path is set too, and the key file wins, as in Litestream")
	}
	return strings.TrimSpace(string(data)), nil
}

// querySecrets are the settings that hold secrets, by their names in a URL
// query folded to lower case without dashes or underscores. They are read
// from config keys and the environment only: a URL ends up in logs, process
// listings and shell histories.
var querySecrets = map[string]string{
	"accesskeyid":     "access-key-id",
	"secretaccesskey": "secret-access-key",
	"sessiontoken":    "session-token",
	"ssecustomerkey":  "sse-customer-key",
}

// checkQuerySecrets refuses a URL whose query holds a secret, which would
// otherwise be ignored: objects written unencrypted in place of SSE-C,
// other credentials used in place of the ones given. The value is never
// repeated.
func checkQuerySecrets(u *url.URL) error {
	for name := range u.Query() {
		fold := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(name))
		key, ok := querySecrets[fold]
		if !ok {
			continue
		}
		switch key {
		case "session-token":
			return errors.New("s3 replica URL has session-token in its query, where credentials are not read: " +
				"temporary credentials come from the AWS SDK's chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, a profile, or a role)")
		case "sse-customer-key":
			return errors.New("s3 replica URL has sse-customer-key in its query, where secrets are not read: " +
				"set the sse-customer-key config key instead, e.g. sse-customer-key: ${WALSHIP_SSE_KEY}")
		}
		return fmt.Errorf("s3 replica URL has %s in its query, where credentials are not read: "+
			"set the access-key-id and secret-access-key config keys, or WALSHIP_ACCESS_KEY_ID and WALSHIP_SECRET_ACCESS_KEY in the environment", key)
	}
	return nil
}

// staticCredentials returns the first complete pair of: the config keys;
// WALSHIP_ACCESS_KEY_ID and WALSHIP_SECRET_ACCESS_KEY; and, as Litestream
// reads them, LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY,
// each standing in for the AWS_* variable of its name when that one is not
// set (so AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY win over them). It
// returns where they came from, or no source, for the SDK's default chain
// (which reads AWS_*). Half a pair is an error, since it is surely a
// mistake.
func staticCredentials(keys map[string]string, getenv func(string) string) (source, id, secret, token string, err error) {
	if source, id, secret, err = credentialPair("config keys", "access-key-id", keys["access-key-id"], "secret-access-key", keys["secret-access-key"]); source != "" || err != nil {
		return source, id, secret, "", err
	}
	if source, id, secret, err = credentialPair("environment", "WALSHIP_ACCESS_KEY_ID", getenv("WALSHIP_ACCESS_KEY_ID"), "WALSHIP_SECRET_ACCESS_KEY", getenv("WALSHIP_SECRET_ACCESS_KEY")); source != "" || err != nil {
		return source, id, secret, "", err
	}
	idName, secretName := "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"
	id, secret = getenv(idName), getenv(secretName)
	lsID, lsSecret := getenv("LITESTREAM_ACCESS_KEY_ID"), getenv("LITESTREAM_SECRET_ACCESS_KEY")
	if (id != "" || lsID == "") && (secret != "" || lsSecret == "") {
		return "", "", "", "", nil // the SDK reads AWS_* itself
	}
	if id == "" {
		id, idName = lsID, "LITESTREAM_ACCESS_KEY_ID"
	} else {
		token = getenv("AWS_SESSION_TOKEN")
	}
	if secret == "" {
		secret, secretName = lsSecret, "LITESTREAM_SECRET_ACCESS_KEY"
	}
	if id == "" {
		idName = "LITESTREAM_ACCESS_KEY_ID (or AWS_ACCESS_KEY_ID)"
	}
	if secret == "" {
		secretName = "LITESTREAM_SECRET_ACCESS_KEY (or AWS_SECRET_ACCESS_KEY)"
	}
	source, id, secret, err = credentialPair("environment", idName, id, secretName, secret)
	return source, id, secret, token, err
}

// credentialPair returns a pair from one source, named "<source> ID/SECRET",
// or nothing when neither half is set, or an error for half a pair.
func credentialPair(source, idName, id, secretName, secret string) (string, string, string, error) {
	switch {
	case id != "" && secret != "":
		return source + " " + idName + "/" + secretName, id, secret, nil
	case id != "":
		return "", "", "", fmt.Errorf("%s is set but %s is not: set both", idName, secretName)
	case secret != "":
		return "", "", "", fmt.Errorf("%s is set but %s is not: set both", secretName, idName)
	}
	return "", "", "", nil
}

// normalizeEndpoint checks an endpoint and gives it a scheme (https when it
// has none) and no trailing slash.
func normalizeEndpoint(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	// The endpoint is never repeated whole in an error: it may hold user
	// information, or a query with a signature or a key.
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse's error quotes the text.
		return "", errors.New("endpoint is not a URL like https://s3.example.com: check its spelling")
	}
	if u.User != nil {
		return "", errors.New("endpoint must not contain credentials: use the access-key-id and secret-access-key keys or the environment")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("endpoint %s must not have a query or fragment: give only the scheme, host and port, like https://s3.example.com", safeEndpoint(u))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("endpoint %s is not a URL like https://s3.example.com", safeEndpoint(u))
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// safeEndpoint describes an endpoint for a message: its scheme, host and
// path, without user information, query or fragment.
func safeEndpoint(u *url.URL) string {
	return strconv.Quote((&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String())
}

// Hosts of providers that Litestream accepts in place of a bare bucket name
// (s3://BUCKET.s3.REGION.backblazeb2.com/path), with the bucket, region and
// endpoint they imply.
var hostForms = []struct {
	re       *regexp.Regexp
	endpoint string // with $region for the region
}{
	{regexp.MustCompile(`^(.+)\.s3\.amazonaws\.com$`), ""},
	{regexp.MustCompile(`^(.+)\.s3[.-]([a-z0-9-]+)\.amazonaws\.com$`), ""},
	{regexp.MustCompile(`^(.+)\.s3\.([a-z0-9-]+)\.backblazeb2\.com$`), "https://s3.$region.backblazeb2.com"},
	{regexp.MustCompile(`^(.+)\.([a-z0-9-]+)\.digitaloceanspaces\.com$`), "https://$region.digitaloceanspaces.com"},
	{regexp.MustCompile(`^(.+)\.s3\.([a-z0-9-]+)\.scw\.cloud$`), "https://s3.$region.scw.cloud"},
	{regexp.MustCompile(`^(.+)\.([a-z0-9-]+)\.linodeobjects\.com$`), "https://$region.linodeobjects.com"},
	{regexp.MustCompile(`^(.+)\.s3\.filebase\.com$`), "https://s3.filebase.com"},
}

// parseHost returns the bucket of a URL host, and the region and endpoint
// of a provider's host form.
func parseHost(host string) (bucket, region, endpoint string) {
	for _, f := range hostForms {
		m := f.re.FindStringSubmatch(host)
		if m == nil {
			continue
		}
		if len(m) > 2 {
			region = m[2]
		}
		return m[1], region, strings.ReplaceAll(f.endpoint, "$region", region)
	}
	return host, "", ""
}

// sse is the server-side encryption of every object: with a key of the
// customer's (SSE-C), or with a key of the store's KMS (SSE-KMS), or none.
type sse struct {
	// customerKey is the SSE-C key, base64, and customerKeyMD5 its MD5
	// digest, base64: the form of the S3 headers.
	customerKey, customerKeyMD5 string
	kmsKeyID                    string
}

// parseSSE reads the sse-customer-key and sse-kms-key-id values. A customer
// key is 32 bytes for AES-256, given as base64 (44 characters, as
// `openssl rand -base64 32` prints) or as 32 raw characters; one cannot be
// mistaken for the other.
func parseSSE(customerKey, kmsKeyID string) (sse, error) {
	if customerKey != "" && kmsKeyID != "" {
		return sse{}, errors.New("sse-customer-key and sse-kms-key-id are both set: choose one kind of server-side encryption")
	}
	var s sse
	if customerKey != "" {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(customerKey))
		if err != nil || len(key) != 32 {
			if len(customerKey) != 32 {
				// The key itself stays out of the message.
				return sse{}, fmt.Errorf("sse-customer-key: a %d-character value is not an AES-256 key: give 32 bytes as base64 (e.g. from `openssl rand -base64 32`) or as 32 characters", len(customerKey))
			}
			key = []byte(customerKey)
		}
		sum := md5.Sum(key)
		s.customerKey = base64.StdEncoding.EncodeToString(key)
		s.customerKeyMD5 = base64.StdEncoding.EncodeToString(sum[:])
	}
	s.kmsKeyID = kmsKeyID
	return s, nil
}

// putObject sets the encryption of an upload (used for single and
// multipart uploads alike).
func (s sse) putObject(in *s3.PutObjectInput) {
	switch {
	case s.customerKey != "":
		in.SSECustomerAlgorithm = aws.String("AES256")
		in.SSECustomerKey = aws.String(s.customerKey)
		in.SSECustomerKeyMD5 = aws.String(s.customerKeyMD5)
	case s.kmsKeyID != "":
		in.ServerSideEncryption = types.ServerSideEncryptionAwsKms
		in.SSEKMSKeyId = aws.String(s.kmsKeyID)
	}
}

// getObject sets the key needed to read an SSE-C object (SSE-KMS needs
// nothing).
func (s sse) getObject(in *s3.GetObjectInput) {
	if s.customerKey != "" {
		in.SSECustomerAlgorithm = aws.String("AES256")
		in.SSECustomerKey = aws.String(s.customerKey)
		in.SSECustomerKeyMD5 = aws.String(s.customerKeyMD5)
	}
}

// headObject is getObject for HEAD requests.
func (s sse) headObject(in *s3.HeadObjectInput) {
	if s.customerKey != "" {
		in.SSECustomerAlgorithm = aws.String("AES256")
		in.SSECustomerKey = aws.String(s.customerKey)
		in.SSECustomerKeyMD5 = aws.String(s.customerKeyMD5)
	}
}
