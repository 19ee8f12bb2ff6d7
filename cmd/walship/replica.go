package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/walship/walship/config"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/file"
)

// laterTypes are replica types Litestream supports that this build does not
// implement yet.
var laterTypes = []string{"s3", "gs", "abs", "sftp", "webdav", "webdavs", "nats", "oss"}

func errNotYet(typ string) error {
	return fmt.Errorf("replica type %s is not supported by this build yet; this build replicates to directories only (url: file:///path, or type: file with path: /path)", typ)
}

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

// newReplicaClient returns the client for a replica given on the command line:
// a URL (file:///abs/path) or a plain directory path, which is made absolute.
func newReplicaClient(urlOrPath string) (storage.Client, error) {
	s := strings.TrimSpace(urlOrPath)
	if s == "" {
		return nil, errors.New("empty replica URL: use file:///path/to/replica or a directory path")
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
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme == "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("replica URL %s names host %q: file URLs hold a local path, like file:///backups/app (three slashes)", redactURL(s), u.Host)
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return nil, fmt.Errorf("replica URL %s has no absolute path: use file:///backups/app, or pass a plain (relative) directory path", redactURL(s))
		}
		return file.New(u.Path), nil
	case slices.Contains(laterTypes, scheme):
		return nil, errNotYet(scheme)
	default:
		return nil, fmt.Errorf("unknown replica URL scheme %q in %s: use file:///path/to/replica or a directory path", u.Scheme, redactURL(s))
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

// clientFromConfig returns the client for a replica of the config file.
func clientFromConfig(r *config.Replica) (storage.Client, error) {
	typ := replicaType(r)
	if r.URL != "" {
		if r.Type != "" && isURL(r.URL) {
			scheme := strings.ToLower(r.URL[:strings.Index(r.URL, "://")])
			if scheme != typ {
				return nil, fmt.Errorf("replica type %s does not match its url %s; remove type: or make them agree", r.Type, redactURL(r.URL))
			}
		}
		if r.Type != "" && !isURL(r.URL) && typ != "file" {
			return nil, fmt.Errorf("replica type %s needs a URL like %s://..., not %q", r.Type, typ, r.URL)
		}
		return newReplicaClient(r.URL)
	}
	switch {
	case typ == "file":
		if strings.TrimSpace(r.Path) == "" {
			return nil, errors.New("file replica has an empty path")
		}
		return file.New(r.Path), nil
	case slices.Contains(laterTypes, typ):
		return nil, errNotYet(typ)
	default:
		return nil, fmt.Errorf("unknown replica type %q: use type: file (other types come in later versions)", r.Type)
	}
}

// redactURL returns s without user information and with the values of
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
		u.User = url.User("REDACTED")
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
func resolveSource(arg string, cf *configFlags, replicaName string) (*source, error) {
	if isURL(arg) {
		if replicaName != "" {
			return nil, usagef("-replica selects a replica of a configured database; it cannot be used with a replica URL")
		}
		c, err := newReplicaClient(arg)
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
			return sourceFromDB(db, *cf.path, replicaName)
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

func sourceFromDB(db *config.DB, cfgPath, name string) (*source, error) {
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
	c, err := clientFromConfig(r)
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
