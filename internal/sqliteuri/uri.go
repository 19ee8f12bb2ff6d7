// Package sqliteuri builds the file: URIs the SQLite driver opens, escaping the
// characters that would otherwise end the path.
package sqliteuri

import "strings"

var escaper = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// File returns a "file:" URI for the database at path with the given query
// (without its leading "?"; may be empty).
func File(path, query string) string {
	u := "file:" + escaper.Replace(path)
	if query != "" {
		u += "?" + query
	}
	return u
}
