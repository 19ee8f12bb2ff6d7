package staging

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/walship/walship/internal/fsutil"
)

// validatedName is the file that records when each replica is next due to
// be verified (validation-interval), so that the schedule goes on across
// restarts: a replica's files do not show it.
const validatedName = "validation-due"

// ValidationDue returns when the replica named name is next due to be
// verified, the zero time if no schedule was recorded (or the record cannot
// be read).
func (d *Dir) ValidationDue(name string) time.Time {
	b, err := os.ReadFile(filepath.Join(d.path, validatedName))
	if err != nil {
		return time.Time{}
	}
	var at map[string]time.Time
	if json.Unmarshal(b, &at) != nil {
		return time.Time{}
	}
	return at[name]
}

// SetValidationDue records that the replica named name is next due to be
// verified at t.
func (d *Dir) SetValidationDue(name string, t time.Time) error {
	path := filepath.Join(d.path, validatedName)
	at := map[string]time.Time{}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &at) // a damaged record is rewritten
	}
	at[name] = t.UTC()
	b, err := json.Marshal(at)
	if err != nil {
		return err
	}
	return fsutil.WriteFile(path, b, 0o644)
}
