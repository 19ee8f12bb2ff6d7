package storage

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Backends that write a file under a temporary name and then rename it into
// place (SFTP, WebDAV) name it ".<name>.tmp-<unix seconds>-<random>": hidden
// from listings, unique, and dated, so a leftover of an interrupted write is
// recognised and swept.

const tempInfix = ".tmp-"

// StaleTempAge is how old a temporary file must be to count as a leftover:
// no write takes that long.
const StaleTempAge = 24 * time.Hour

// TempName returns a temporary name for a write of name started at now.
func TempName(name string, now time.Time) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails
	return "." + name + tempInfix + strconv.FormatInt(now.Unix(), 10) + "-" + hex.EncodeToString(b[:])
}

// IsTempName reports whether name is a temporary name of a write.
func IsTempName(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name[1:], tempInfix)
}

// IsStaleTemp reports whether the temporary file name was created more than
// StaleTempAge before now, by the time in its name.
func IsStaleTemp(name string, now time.Time) bool {
	if !IsTempName(name) {
		return false
	}
	_, rest, _ := strings.Cut(name[1:], tempInfix)
	sec, _, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	t, err := strconv.ParseInt(sec, 10, 64)
	return err == nil && now.Sub(time.Unix(t, 0)) > StaleTempAge
}
