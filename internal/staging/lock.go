package staging

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walship/walship/internal/fsutil"
)

// One process replicates a database: the staging directory's lock file
// holds an advisory lock (flock) for as long as a process has the directory
// open. The kernel releases it when that process exits or is killed, so a
// SIGKILLed replicator never blocks its restart. Two replicators of one
// database would each stage a history of their own under the same TXIDs.
const lockName = "lock"

// holder is what the lock file says about the process holding it.
type holder struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

func lock(dir string) (*fsutil.Lock, error) {
	path := filepath.Join(dir, lockName)
	l, held, err := fsutil.TryLock(path)
	if errors.Is(err, fsutil.ErrLocked) {
		who := "another process"
		var h holder
		if json.Unmarshal(held, &h) == nil && h.PID != 0 {
			who = fmt.Sprintf("walship process %d on host %s, since %s", h.PID, h.Host, h.Since.UTC().Format(time.RFC3339))
		}
		return nil, fmt.Errorf("this database is already being replicated by %s: it holds the lock of the staging directory %s. "+
			"Stop that process first: two replicators of one database write conflicting histories", who, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("lock the staging directory: %w", err)
	}
	host, _ := os.Hostname()
	b, _ := json.Marshal(holder{PID: os.Getpid(), Host: host, Since: time.Now().UTC()})
	if err := l.Set(b); err != nil {
		l.Unlock()
		return nil, fmt.Errorf("lock the staging directory %s: %w", dir, err)
	}
	return l, nil
}

// identityName is the file that holds the database's identity.
const identityName = "identity"

// readIdentity returns the identity kept in dir, creating it the first
// time.
func readIdentity(dir string) (string, error) {
	path := filepath.Join(dir, identityName)
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); len(id) == 32 {
			return id, nil
		}
		// A damaged identity is replaced: the owner records also know
		// the database by its host and path.
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read the database's identity: %w", err)
	}
	raw := make([]byte, 16)
	rand.Read(raw)
	id := hex.EncodeToString(raw)
	if err := fsutil.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write the database's identity: %w", err)
	}
	return id, nil
}

// SetIdentity makes id the identity kept in the staging directory at dir,
// creating the directory if needed: a database restored from a replica
// takes the identity of the database the replica belongs to, so that
// replicating it goes on with that replica's history. It fails if a
// process replicates the database (it holds the directory's lock).
func SetIdentity(dir, id string) error {
	if len(id) != 32 {
		return fmt.Errorf("database identity %q is not one walship wrote (32 hex digits)", id)
	}
	if b, err := os.ReadFile(filepath.Join(dir, identityName)); err == nil && strings.TrimSpace(string(b)) == id {
		return nil // already this database's, as after a restore over it
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create staging directory %s: %w", dir, err)
	}
	l, err := lock(dir)
	if err != nil {
		return err
	}
	defer l.Unlock()
	if err := fsutil.WriteFile(filepath.Join(dir, identityName), []byte(id+"\n"), 0o644); err != nil {
		return fmt.Errorf("write the database's identity in %s: %w", dir, err)
	}
	return nil
}

// Hold takes the lock of the staging directory at dir, creating the
// directory if needed, as a replicator of the database does: a standby
// holds it while it keeps the database as a follower's copy, so that no
// replicator starts on it meanwhile. The error names the holder.
func Hold(dir string) (*fsutil.Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create staging directory %s: %w", dir, err)
	}
	return lock(dir)
}
