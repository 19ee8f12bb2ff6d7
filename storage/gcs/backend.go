package gcs

import (
	"github.com/walship/walship/storage"
)

// Backend declares the Google Cloud Storage backend: gs://BUCKET/PATH.
var Backend = storage.Backend{
	Schemes:  []string{Type},
	Form:     "gs://BUCKET/PATH",
	Keys:     []string{"bucket", "endpoint", "credentials-file", "part-size", "skip-verify"},
	FromKeys: storage.BucketURL(Type, false),
	Open:     storage.OpenClient(Open),
}
