package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/walship/walship/config"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/backend"
	"github.com/walship/walship/storage/file"
)

// isURL reports whether s looks like a URL ("scheme://...") rather than a
// path.
func isURL(s string) bool {
	i := strings.Index(s, "://")
	if i <= 0 {
		return false
	}
	for _, c := range s[:i] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// clients opens replica clients. One value serves a whole process, so every
// client shares its transfer limits.
type clients struct {
	transfers *storage.Transfers
	log       *slog.Logger
}

func newClients(log *slog.Logger) *clients {
	return &clients{transfers: storage.NewTransfers(0, 0), log: log}
}

// fromURL returns the client for a replica given on the command line: a URL
// (s3://bucket/path, file:///abs/path, ...) or a plain directory path, which
// is made absolute. keys are config keys that come with it (none on the
// command line).
func (cl *clients) fromURL(ctx context.Context, urlOrPath string, keys map[string]string) (storage.Client, error) {
	s := strings.TrimSpace(urlOrPath)
	if s == "" {
		return nil, errors.New("empty replica URL: use a URL like s3://bucket/path or file:///path/to/replica, or a directory path")
	}
	if !isURL(s) {
		if strings.HasPrefix(s, "file:") {
			return nil, fmt.Errorf("replica URL %q: write file URLs with three slashes and an absolute path, like file:///backups/app", s)
		}
		return file.New(s), nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid replica URL %s: %v", redactURL(s), stripURLFromErr(err))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch {
	case u.Scheme == "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("replica URL %s names host %q: file URLs hold a local path, like file:///backups/app (three slashes)", redactURL(s), u.Host)
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return nil, fmt.Errorf("replica URL %s has no absolute path: use file:///backups/app, or pass a plain (relative) directory path", redactURL(s))
		}
		return file.New(u.Path), nil
	case slices.Contains(backend.Schemes, u.Scheme):
		c, err := backend.Open(ctx, storage.Spec{URL: u, Keys: keys, Transfers: cl.transfers, Logger: cl.log})
		if err != nil {
			return nil, fmt.Errorf("replica %s: %w", redactURL(s), err)
		}
		return c, nil
	default:
		return nil, fmt.Errorf("unknown replica URL scheme %q in %s: use one of %s, or a directory path", u.Scheme, redactURL(s), strings.Join(backend.Schemes, "://, ")+"://")
	}
}

// stripURLFromErr returns the reason of a *url.Error without the URL, which
// may hold credentials.
func stripURLFromErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// replicaType returns the type of a configured replica: its type key, else
// the scheme of its URL, else "file" (a path).
func replicaType(r *config.Replica) string {
	if r.Type != "" {
		return strings.ToLower(r.Type)
	}
	if r.URL != "" {
		if isURL(r.URL) {
			return strings.ToLower(r.URL[:strings.Index(r.URL, "://")])
		}
		return "file"
	}
	return "file"
}

// replicaName returns the name of a configured replica: its name key, else
// its type.
func replicaName(r *config.Replica) string {
	if r.Name != "" {
		return r.Name
	}
	return replicaType(r)
}

// replicaDest describes where a configured replica writes, without
// credentials.
func replicaDest(r *config.Replica) string {
	if r.URL != "" {
		return redactURL(r.URL)
	}
	return r.Path
}

// fromConfig returns the client for a replica of the config file. A replica
// written with type: and keys (bucket:, path:, host:, ...) instead of url:
// is turned into the equivalent URL. Top-level S3 credentials apply to every
// replica that has none of its own.
func (cl *clients) fromConfig(ctx context.Context, cfg *config.Config, r *config.Replica) (storage.Client, error) {
	typ := replicaType(r)
	keys := maps.Clone(r.Extra)
	if cfg != nil && typ == "s3" {
		if keys["access-key-id"] == "" && cfg.AccessKeyID != "" {
			keys = withKey(keys, "access-key-id", cfg.AccessKeyID)
		}
		if keys["secret-access-key"] == "" && cfg.SecretAccessKey != "" {
			keys = withKey(keys, "secret-access-key", cfg.SecretAccessKey)
		}
	}
	if r.URL != "" {
		if r.Type != "" && isURL(r.URL) {
			scheme := strings.ToLower(r.URL[:strings.Index(r.URL, "://")])
			if scheme != typ && !(typ == "webdav" && scheme == "webdavs") {
				return nil, fmt.Errorf("replica type %s does not match its url %s; remove type: or make them agree", r.Type, redactURL(r.URL))
			}
		}
		if r.Type != "" && !isURL(r.URL) && typ != "file" {
			return nil, fmt.Errorf("replica type %s needs a URL like %s://..., not %q", r.Type, typ, r.URL)
		}
		if typ == "nats" && r.Path != "" {
			keys = withKey(keys, "path", r.Path)
		}
		return cl.fromURL(ctx, r.URL, keys)
	}
	switch typ {
	case "file":
		if strings.TrimSpace(r.Path) == "" {
			return nil, errors.New("file replica has an empty path")
		}
		return file.New(r.Path), nil
	case "nats":
		// Litestream's form: the server in url: (or none: the local one),
		// the bucket and an optional path in keys.
		u := &url.URL{Scheme: typ, Host: keys["host"]}
		if r.Path != "" {
			keys = withKey(keys, "path", r.Path)
		}
		return cl.open(ctx, u, keys)
	case "s3", "gs", "abs":
		bucket := keys["bucket"]
		if bucket == "" {
			return nil, fmt.Errorf("%s replica has no bucket: add bucket: (or write url: %s://BUCKET/PATH)", typ, typ)
		}
		u := &url.URL{Scheme: typ, Host: bucket, Path: "/" + strings.TrimPrefix(r.Path, "/")}
		if typ == "abs" && keys["account-name"] != "" {
			u.User = url.User(keys["account-name"])
		}
		return cl.open(ctx, u, keys)
	case "sftp":
		host := keys["host"]
		if host == "" {
			return nil, errors.New("sftp replica has no host: add host: (or write url: sftp://USER@HOST/PATH)")
		}
		// As in Litestream, a relative path is in the login directory.
		p := r.Path
		if !strings.HasPrefix(p, "/") {
			p = "/~/" + p
		}
		u := &url.URL{Scheme: typ, Host: host, Path: p}
		if keys["user"] != "" {
			u.User = url.User(keys["user"])
		}
		return cl.open(ctx, u, keys)
	case "webdav", "webdavs":
		return nil, fmt.Errorf("%s replica needs url: (e.g. url: webdavs://dav.example.com/backups/app)", typ)
	default:
		return nil, fmt.Errorf("unknown replica type %q: use one of %s", r.Type, strings.Join(backend.Schemes, ", "))
	}
}

// closeClient releases a client's connections, for backends that hold them.
func closeClient(c storage.Client) {
	if cl, ok := c.(io.Closer); ok {
		cl.Close()
	}
}

// withKey returns keys with k set to v, allocating the map if needed.
func withKey(keys map[string]string, k, v string) map[string]string {
	if keys == nil {
		keys = map[string]string{}
	}
	keys[k] = v
	return keys
}

// open opens a backend client for a URL built from config keys.
func (cl *clients) open(ctx context.Context, u *url.URL, keys map[string]string) (storage.Client, error) {
	c, err := backend.Open(ctx, storage.Spec{URL: u, Keys: keys, Transfers: cl.transfers, Logger: cl.log})
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", redactURL(u.String()), err)
	}
	return c, nil
}

// redactURL returns s without passwords (keeping the login name of SFTP,
// WebDAV and Azure URLs, but no user information of others, where it would
// be an access key or a token) and with the values of
// secret-looking query parameters replaced, for messages and listings.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// Drop anything that could be user information.
		if i := strings.Index(s, "://"); i >= 0 {
			rest := s[i+3:]
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				return s[:i+3] + "REDACTED@" + rest[at+1:]
			}
		}
		return s
	}
	if u.User != nil {
		_, hasPassword := u.User.Password()
		switch login := slices.Contains([]string{"sftp", "webdav", "webdavs", "abs"}, strings.ToLower(u.Scheme)); {
		case !login:
			// An S3 access key, a NATS token: keep none of it.
			u.User = url.User("REDACTED")
		case hasPassword:
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			lk := strings.ToLower(k)
			for _, w := range []string{"secret", "password", "key", "token", "sig", "credential"} {
				if strings.Contains(lk, w) {
					q.Set(k, "REDACTED")
					break
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// source is what restore and ltx read from.
type source struct {
	client storage.Client
	db     *config.DB // the configured database, when the argument named one
}

// resolveSource interprets the DB_PATH|REPLICA_URL argument of restore and
// ltx: a URL, an existing directory (a replica), or the path of a database
// listed in the config file (then its replica named replicaName, or its first
// replica).
func (cl *clients) resolveSource(ctx context.Context, arg string, cf *configFlags, replicaName string) (*source, error) {
	if isURL(arg) {
		if replicaName != "" {
			return nil, usagef("-replica selects a replica of a configured database; it cannot be used with a replica URL")
		}
		c, err := cl.fromURL(ctx, arg, nil)
		if err != nil {
			return nil, err
		}
		return &source{client: c}, nil
	}
	fi, statErr := os.Stat(arg)
	if statErr == nil && fi.IsDir() {
		if replicaName != "" {
			return nil, usagef("-replica selects a replica of a configured database; %s is a replica directory", arg)
		}
		return &source{client: file.New(arg)}, nil
	}

	cfg, err := cf.load(true)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		for _, db := range cfg.DBs {
			if db.Path != abs && !sameExistingFile(db.Path, abs) {
				continue
			}
			return cl.sourceFromDB(ctx, cfg, db, *cf.path, replicaName)
		}
	}

	var where string
	if cfg == nil {
		where = fmt.Sprintf("there is no config file at %s to look it up in (use -config PATH or set $%s)", *cf.path, config.PathEnv)
	} else {
		where = fmt.Sprintf("config %s lists no database at that path", *cf.path)
	}
	switch {
	case statErr == nil:
		return nil, fmt.Errorf("%s is a file, not a replica directory, and %s; pass the replica instead (file:///path/to/replica)", abs, where)
	case errors.Is(statErr, fs.ErrNotExist):
		return nil, fmt.Errorf("no replica directory at %s, and %s; pass a replica URL like file:///path/to/replica or a configured database path", abs, where)
	default:
		return nil, fmt.Errorf("%s: %v", arg, statErr)
	}
}

func (cl *clients) sourceFromDB(ctx context.Context, cfg *config.Config, db *config.DB, cfgPath, name string) (*source, error) {
	replicas := db.AllReplicas()
	if len(replicas) == 0 {
		return nil, fmt.Errorf("%s:%d: database %s has no replica; add a replica: entry", cfgPath, db.Line, db.Path)
	}
	r := replicas[0]
	if name != "" {
		r = nil
		var names []string
		for _, cand := range replicas {
			names = append(names, replicaName(cand))
			if replicaName(cand) == name {
				r = cand
				break
			}
		}
		if r == nil {
			return nil, fmt.Errorf("database %s has no replica named %q (its replicas: %s)", db.Path, name, strings.Join(names, ", "))
		}
	}
	c, err := cl.fromConfig(ctx, cfg, r)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: database %s, replica %s: %w", cfgPath, r.Line, db.Path, replicaName(r), err)
	}
	return &source{client: c, db: db}, nil
}

func sameExistingFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(fa, fb)
}
