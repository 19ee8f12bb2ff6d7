package s3

import (
	"github.com/walship/walship/storage"
)

// Backend declares the S3 backend: s3://BUCKET/PATH on Amazon S3 or any
// S3-compatible store.
var Backend = storage.Backend{
	Schemes: []string{Type},
	Form:    "s3://BUCKET/PATH",
	Keys: []string{"bucket", "access-key-id", "secret-access-key", "region", "endpoint", "force-path-style",
		"skip-verify", "part-size", "concurrency", "checksums", "storage-class",
		"sse-customer-key", "sse-customer-key-path", "sse-customer-algorithm", "sse-kms-key-id", "conditional-writes"},
	Ignored: map[string]string{
		"sign-payload":         "walship leaves the signing of requests to the AWS SDK",
		"sign-accept-encoding": "walship leaves the signing of requests to the AWS SDK",
		"require-content-md5":  "walship sends Content-MD5 where S3-compatible stores require it (deletes), and with an endpoint sends other checksums only where S3 requires them (see checksums:)",
	},
	FromKeys: storage.BucketURL(Type, false),
	Open:     storage.OpenClient(Open),
}
