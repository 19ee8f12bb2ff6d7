package walship_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
	"github.com/walship/walship/storage/backend"
)

// A replica of the config file opens the same destination whether it is
// written as a URL or as Litestream's type: and keys, and each mistake is
// reported in the operator's terms.
func TestReplicaClient(t *testing.T) {
	op := backend.NewOpener(slog.New(slog.DiscardHandler))
	ctx := context.Background()
	for _, tt := range []struct {
		yaml string
		want string // the client's String, or the error's
	}{
		{"url: file:///backups/app", "file:///backups/app"},
		{"type: file\n      path: /backups/app", "file:///backups/app"},
		{"path: /backups/app", "file:///backups/app"},
		{"type: s3\n      bucket: b\n      path: db\n      region: eu-west-1", "s3://b/db"},
		{"url: s3://b/db\n      region: eu-west-1", "s3://b/db"},
		{"type: webdav\n      url: webdavs://dav.example.com/db", "webdavs://dav.example.com/db"},
		{"type: s3\n      path: db", "s3 replica has no bucket: add bucket: (or write url: s3://BUCKET/PATH)"},
		{"type: sftp\n      path: db", "sftp replica has no host"},
		{"type: webdav\n      path: db", "webdav replica needs url: (e.g. url: webdavs://HOST/PATH)"},
		{"type: s3\n      url: gs://b/db", "replica type s3 does not match its url gs://b/db"},
		{"type: webdavs\n      url: webdav://dav.example.com/db", "replica type webdavs does not match its url"},
		{"type: s3\n      url: /backups/app", "replica type s3 needs a URL like s3://BUCKET/PATH"},
		{"type: ftp\n      path: db", `unknown replica type "ftp"`},
		{"url: ftp://h/db", `unknown replica URL scheme "ftp"`},
	} {
		cfg, err := config.Parse("test.yml", []byte("access-key-id: AKIA\nsecret-access-key: shh\ndbs:\n  - path: /a.db\n    replica:\n      "+tt.yaml+"\n"), false)
		if err != nil {
			t.Fatalf("%s: %v", tt.yaml, err)
		}
		c, err := walship.ReplicaClient(ctx, op, cfg, cfg.DBs[0].Replica)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = c.String()
		}
		if !strings.Contains(got, tt.want) {
			t.Errorf("%s:\n got %s\nwant %s", tt.yaml, got, tt.want)
		}
		if strings.Contains(got, "shh") {
			t.Errorf("%s: the secret shows: %s", tt.yaml, got)
		}
	}
}
