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
		"skip-verify", "part-size", "concurrency", "checksums", "sse-customer-key", "sse-kms-key-id", "conditional-writes"},
	FromKeys: storage.BucketURL(Type, false),
	Open:     storage.OpenClient(Open),
}
