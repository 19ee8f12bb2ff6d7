package storage

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/superfly/ltx"
)

// Replica layouts shared with Litestream 0.5, so each tool reads the
// other's replicas:
//
//	S3-compatible stores: <prefix>/<level as 4 hex digits>/<min>-<max>.ltx
//	every other backend:  <prefix>/ltx/<level in decimal>/<min>-<max>.ltx

// HexLevelDir returns the directory (ending in "/") of a level in the layout
// of S3-compatible stores. An empty prefix puts levels at the top.
func HexLevelDir(prefix string, level int) string {
	return joinKey(prefix, fmt.Sprintf("%04x", level)) + "/"
}

// LTXLevelDir returns the directory (ending in "/") of a level in the layout
// of every other backend: <prefix>/ltx/<level>/.
func LTXLevelDir(prefix string, level int) string {
	return joinKey(prefix, "ltx", fmt.Sprint(level)) + "/"
}

// joinKey joins key elements with "/", ignoring empty ones and stray slashes,
// so "", "/", "db" and "db/" prefixes all behave.
func joinKey(elem ...string) string {
	var parts []string
	for _, e := range elem {
		if e = strings.Trim(e, "/"); e != "" {
			parts = append(parts, e)
		}
	}
	return path.Join(parts...)
}

// ParseFileName parses the base name of an LTX file ("<min>-<max>.ltx"). ok is
// false for any other name, which listings skip.
func ParseFileName(name string) (minTXID, maxTXID ltx.TXID, ok bool) {
	minTXID, maxTXID, err := ltx.ParseFilename(path.Base(name))
	if err != nil || minTXID == 0 || maxTXID < minTXID {
		return 0, 0, false
	}
	return minTXID, maxTXID, true
}

// TimestampMetadata is the object metadata key that holds an LTX file's
// header timestamp (Litestream's name). Azure, which forbids dashes in
// metadata names, uses TimestampMetadataAzure.
const (
	TimestampMetadata      = "litestream-timestamp"
	TimestampMetadataAzure = "litestreamtimestamp"
)

// FormatTimestamp formats a file's timestamp for object metadata: RFC 3339
// in UTC with as many fractional digits as needed (millisecond precision in
// practice, as in the LTX header).
func FormatTimestamp(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// ParseTimestamp parses a timestamp written by FormatTimestamp (or by
// Litestream).
func ParseTimestamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid %s metadata %q: %w", TimestampMetadata, s, err)
	}
	return t.UTC(), nil
}
