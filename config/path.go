package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// DefaultPath is the configuration file used when neither an explicit path
// nor $WALSHIP_CONFIG is given.
const DefaultPath = "/etc/walship.yml"

// PathEnv names the environment variable that overrides [DefaultPath].
const PathEnv = "WALSHIP_CONFIG"

// LitestreamPathEnv names Litestream's variable for its config file, which
// walship reads when $WALSHIP_CONFIG is unset and [DefaultPath] does not
// exist.
const LitestreamPathEnv = "LITESTREAM_CONFIG"

// LitestreamDefaultPath is Litestream's default config file. walship does
// not read it unless told to (a Litestream may still be replicating its
// databases), but says it is there when no config file is found.
const LitestreamDefaultPath = "/etc/litestream.yml"

// Path returns the config path to use: explicit if non-empty, else
// $WALSHIP_CONFIG if set to a non-empty value, else [DefaultPath] if it
// exists, else $LITESTREAM_CONFIG if set to a non-empty value, else
// [DefaultPath].
func Path(explicit string) string {
	return pathFrom(explicit, os.Getenv, exists)
}

func pathFrom(explicit string, getenv func(string) string, exists func(string) bool) string {
	switch {
	case explicit != "":
		return explicit
	case getenv(PathEnv) != "":
		return getenv(PathEnv)
	case exists(DefaultPath):
		return DefaultPath
	case getenv(LitestreamPathEnv) != "":
		return getenv(LitestreamPathEnv)
	}
	return DefaultPath
}

// exists reports whether there is a file at path, or one that cannot be
// told apart from none (an unreadable directory).
func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// LitestreamHint returns, when path is [DefaultPath] and
// [LitestreamDefaultPath] exists, a sentence for the error that says no
// config file was found: that Litestream's is there and how to use it.
// Else "".
func LitestreamHint(path string) string {
	if path != DefaultPath || !exists(LitestreamDefaultPath) {
		return ""
	}
	return fmt.Sprintf("; Litestream's config %s is there: walship reads it as it is with -config %s (or %s=%s), once Litestream no longer replicates its databases",
		LitestreamDefaultPath, LitestreamDefaultPath, PathEnv, LitestreamDefaultPath)
}
