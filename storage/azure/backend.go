package azure

import (
	"github.com/walship/walship/storage"
)

// Backend declares the Azure Blob Storage backend:
// abs://ACCOUNT@CONTAINER/PATH. The account name in the URL is shown in
// messages; a SAS token in its query never is.
var Backend = storage.Backend{
	Schemes:     []string{Type},
	Form:        "abs://ACCOUNT@CONTAINER/PATH",
	Keys:        []string{"bucket", "account-name", "account-key", "sas-token", "endpoint", "part-size", "concurrency", "skip-verify"},
	UserIsLogin: true,
	FromKeys:    storage.BucketURL(Type, true),
	Open:        storage.OpenClient(Open),
}
