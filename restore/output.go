package restore

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walship/walship/internal/fsutil"
)

// An output is a restore's hold on its output path, from the first byte
// written to the rename into place:
//
//   - an exclusive lock (a lock file beside the output, removed at the
//     end), so that two restores to one path cannot both write it: the
//     second fails at once and names the first;
//   - a temporary file of its own, <out>.tmp-<random>, so that no restore
//     ever writes into another's;
//   - a replacement of an existing database (-force) that a kill at any
//     instant cannot lose: the old database's WAL and rollback journal are
//     moved aside, not deleted, the new file renamed over the old one, and
//     only then the old WAL and journal removed, with a journal of the
//     replacement that the next restore to the path reads to finish it or
//     roll it back. SQLite never finds the old database's WAL or hot
//     journal beside the new file, which it would apply to it.
type output struct {
	path    string
	lock    *fsutil.Lock
	tmp     *os.File // the temporary file, until it is closed
	tmpName string
	done    bool // the temporary file was renamed into place
}

// Names beside the output, for <dir>/<base>.
func lockName(out string) string    { return hidden(out, ".restore-lock") }
func journalName(out string) string { return hidden(out, ".restore-journal") }
func hidden(out, suffix string) string {
	return filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+suffix)
}

// asideSuffix ends the name of an old database's file moved aside by an
// unfinished replacement.
const asideSuffix = ".replaced"

// lockHolder is what the lock file says of the restore holding it.
type lockHolder struct {
	PID   int       `json:"pid"`
	Since time.Time `json:"since"`
}

// openOutput locks the output path, finishes or rolls back a replacement
// that an earlier restore left half done, removes what earlier restores
// left, and creates the temporary file.
func openOutput(path string) (o *output, err error) {
	l, held, err := fsutil.TryLockFile(lockName(path))
	if errors.Is(err, fsutil.ErrLocked) {
		who := "another restore"
		var h lockHolder
		if json.Unmarshal(held, &h) == nil && h.PID != 0 {
			who = fmt.Sprintf("another restore (process %d, since %s)", h.PID, h.Since.UTC().Format(time.RFC3339))
		}
		return nil, fmt.Errorf("%s is writing %s: wait for it to finish, or restore to another path with -o", who, path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock the output %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			l.Remove()
		}
	}()
	b, _ := json.Marshal(lockHolder{PID: os.Getpid(), Since: time.Now().UTC()})
	if err := l.Set(b); err != nil {
		return nil, fmt.Errorf("lock the output %s: %w", path, err)
	}
	if err := recoverReplacement(path); err != nil {
		return nil, err
	}
	removeStaleTemps(path)
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create a temporary file beside %s: %w", path, diskHint(err))
	}
	return &output{path: path, lock: l, tmp: tmp, tmpName: tmp.Name()}, nil
}

// removeStaleTemps removes the temporary files of restores to path that
// were interrupted (the lock says none is running), and their downloads:
// <base>.tmp (older releases), <base>.tmp-*.
func removeStaleTemps(path string) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if name := e.Name(); !e.IsDir() && (name == base+".tmp" || strings.HasPrefix(name, base+".tmp-")) {
			os.Remove(filepath.Join(dir, name))
		}
	}
}

// close removes the temporary file unless it was renamed into place, and
// releases the lock.
func (o *output) close() {
	if o.tmp != nil {
		o.tmp.Close()
	}
	if !o.done {
		os.Remove(o.tmpName)
	}
	o.lock.Remove()
}

// commit renames the finished temporary file into place. With force, an
// existing database is replaced: see output. The file must be synced and
// closed.
func (o *output) commit(force bool, step func(string) error) error {
	tmp := o.tmpName
	if err := CheckOutput(o.path, force); err != nil {
		return err
	}
	if len(existing(o.path)) == 0 {
		if err := os.Rename(tmp, o.path); err != nil {
			return fmt.Errorf("rename restored database into place: %w", err)
		}
		o.done = true
		return fsutil.SyncDir(filepath.Dir(o.path))
	}
	return o.replace(tmp, step)
}

// sideFiles are the suffixes of the files SQLite keeps beside a database
// (its WAL, shared-memory index, rollback journal), which a replacement
// moves aside.
var sideFiles = []string{"-wal", "-shm", "-journal"}

// existing returns the files of a database at path: the file, its WAL,
// its shared-memory index, its rollback journal.
func existing(path string) []string {
	var out []string
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// journal is what a replacement in progress records, for the next restore
// to finish it or roll it back.
type journal struct {
	// Temp is the new database's file, in the output's directory, until it
	// is renamed into place.
	Temp string `json:"temp"`
	// ID identifies that file (device and inode), which a rename keeps:
	// the replacement is done when the output is that file.
	ID string `json:"id,omitempty"`
}

// replace puts tmp in place of the database at o.path, which exists. The
// old database's WAL (which holds its newest commits), shared-memory index
// and rollback journal (hot when a writer was killed mid-commit: the old
// pages it would write back) are moved aside first, so that SQLite cannot
// replay them onto the new file, and removed only once the new file is in
// place; the old file itself is replaced by the rename. A kill at any
// instant leaves either the old database whole (its WAL and journal aside,
// put back by recoverReplacement) or the new one. step, when set, is
// called after each step (tests stop there).
func (o *output) replace(tmp string, step func(string) error) (err error) {
	dir := filepath.Dir(o.path)
	defer func() {
		if err != nil && !o.done {
			// Put the old database back together now, while the new
			// file, which tells recoverReplacement that it never reached
			// its place, is still there.
			err = errors.Join(err, recoverReplacement(o.path))
		}
	}()
	if step == nil {
		step = func(string) error { return nil }
	}
	j := journal{Temp: filepath.Base(tmp)}
	if fi, err := os.Stat(tmp); err == nil {
		j.ID = fileID(fi)
	}
	b, _ := json.Marshal(j)
	if err := fsutil.WriteFile(journalName(o.path), b, 0o644); err != nil {
		return fmt.Errorf("record the replacement of %s: %w", o.path, diskHint(err))
	}
	if err := step("journal"); err != nil {
		return err
	}
	for _, suffix := range sideFiles {
		p := o.path + suffix
		if err := os.Rename(p, p+asideSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("move the old %s aside: %w", p, err)
		}
		if err := step("aside " + filepath.Base(p)); err != nil {
			return err
		}
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return err
	}
	if err := os.Rename(tmp, o.path); err != nil {
		return fmt.Errorf("rename restored database into place: %w", err)
	}
	o.done = true
	if err := fsutil.SyncDir(dir); err != nil {
		return err
	}
	if err := step("renamed"); err != nil {
		return err
	}
	return finishReplacement(o.path)
}

// finishReplacement removes what a replacement whose new file is in place
// moved aside, then its journal.
func finishReplacement(path string) error {
	for _, suffix := range sideFiles {
		p := path + suffix
		if err := os.Remove(p + asideSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove the replaced %s: %w", p, err)
		}
	}
	if err := os.Remove(journalName(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(path))
}

// RecoverOutput finishes or rolls back a replacement of the database at
// path that an interrupted restore with Force left half done: afterwards
// path holds either the old database, its WAL back beside it, or the
// restored one. There is nothing to do, and nothing is written, when no
// restore was interrupted there. It fails while a restore to path runs.
// Every restore to path does this first; run it before deciding anything
// from the files at path.
func RecoverOutput(path string) error {
	if _, err := os.Stat(journalName(path)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	l, _, err := fsutil.TryLockFile(lockName(path))
	if errors.Is(err, fsutil.ErrLocked) {
		return fmt.Errorf("another restore is writing %s: wait for it to finish", path)
	}
	if err != nil {
		return fmt.Errorf("lock the output %s: %w", path, err)
	}
	defer l.Remove()
	if err := recoverReplacement(path); err != nil {
		return err
	}
	removeStaleTemps(path)
	return nil
}

// recoverReplacement finishes or rolls back a replacement of the database
// at path that a restore left half done: finished when the file at path is
// the new one (the journal holds its identity), rolled back otherwise, by
// moving the old WAL and index back. A rollback that finds a WAL there
// again refuses, and deletes nothing.
func recoverReplacement(path string) error {
	b, err := os.ReadFile(journalName(path))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the journal of an interrupted restore to %s: %w", path, err)
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil || j.Temp == "" {
		if !movedAside(path) {
			// Written part way, before anything was moved: nothing
			// to do but remove it.
			return os.Remove(journalName(path))
		}
		return fmt.Errorf("the journal %s of an interrupted restore is damaged, and the old database's files were moved aside (%s-wal%s, %s-shm%s, %s-journal%s): if the database at %s is the old one, move them back without the %s suffix; then remove the journal",
			journalName(path), path, asideSuffix, path, asideSuffix, path, asideSuffix, path, asideSuffix)
	}
	if j.ID != "" {
		if fi, err := os.Stat(path); err == nil && fileID(fi) == j.ID {
			return finishReplacement(path)
		}
		return rollBack(path) // path is not the new file: it never got there
	}
	// No file identity on this system: whether the new file is still
	// under its temporary name is all there is to go by.
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), filepath.Base(j.Temp))); err == nil {
		return rollBack(path)
	}
	return finishReplacement(path)
}

// movedAside reports whether a replacement of path moved anything aside.
func movedAside(path string) bool {
	for _, suffix := range sideFiles {
		if _, err := os.Stat(path + suffix + asideSuffix); err == nil {
			return true
		}
	}
	return false
}

// rollBack puts back what a replacement of path moved aside, before its new
// file reached its place, and removes the journal.
func rollBack(path string) error {
	for _, suffix := range sideFiles {
		p := path + suffix
		if _, err := os.Stat(p + asideSuffix); err != nil {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("an interrupted restore moved %s aside to %s, and %s exists again: walship does not know which is the database's; move one away", p, p+asideSuffix, p)
		}
		if err := os.Rename(p+asideSuffix, p); err != nil {
			return fmt.Errorf("put back %s after an interrupted restore: %w", p, err)
		}
	}
	if err := os.Remove(journalName(path)); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(path))
}
