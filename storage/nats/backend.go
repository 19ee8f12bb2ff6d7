package nats

import (
	"net/url"

	"github.com/walship/walship/storage"
)

// Backend declares the NATS JetStream object store backend:
// nats://HOST:4222/BUCKET[/PATH]. Litestream's form, type: nats with the
// bucket (and a path) in keys and the server, if any, in host:, works too.
var Backend = storage.Backend{
	Schemes: []string{Type},
	Form:    "nats://HOST:4222/BUCKET",
	Keys: []string{"host", "bucket", "username", "user", "password", "token", "creds", "nkey", "jwt", "seed", "tls",
		"root-cas", "client-cert", "client-key", "max-reconnects", "reconnect-wait", "timeout"},
	FromKeys: func(path string, keys map[string]string) (*url.URL, map[string]string, error) {
		if path != "" {
			keys = storage.WithKey(keys, "path", path)
		}
		return &url.URL{Scheme: Type, Host: keys["host"]}, keys, nil
	},
	Open: storage.OpenClient(Open),
}
