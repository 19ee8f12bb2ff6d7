package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/walship/walship/config"
)

// logLevelEnv is the variable Litestream reads for its log level; walship
// reads it too. The -log-level flag wins over it, and it over the config
// file's logging.level.
const logLevelEnv = "LOG_LEVEL"

// logSettings say how replicate logs.
type logSettings struct {
	level  string // debug, info, warn or error (also warning, and Litestream's trace)
	format string // text or json
	stdout bool   // standard output rather than standard error
	source bool   // add the source file and line of each record
}

// configLogSettings returns the settings of the config file's logging:
// section, with the level of the -log-level flag or of $LOG_LEVEL when set.
// A $LOG_LEVEL that is no level is not used, and the returned note says so.
func configLogSettings(l config.Logging, flagLevel, envLevel string) (s logSettings, note string) {
	s = logSettings{level: l.Level, format: l.Type}
	s.stdout = l.Stderr != nil && !*l.Stderr
	s.source = l.Source != nil && *l.Source
	s.level, note = pickLevel(s.level, flagLevel, envLevel)
	return s, note
}

// pickLevel returns the flag's level if set, else $LOG_LEVEL's if it is a
// level (with a note if it is not), else level.
func pickLevel(level, flagLevel, envLevel string) (string, string) {
	switch {
	case flagLevel != "":
		return flagLevel, ""
	case envLevel == "":
		return level, ""
	}
	if _, err := parseLevel(envLevel); err != nil {
		return level, fmt.Sprintf("%s=%q is not a log level (debug, info, warn or error) and is not used", logLevelEnv, envLevel)
	}
	return envLevel, ""
}

// parseLevel reads a log level; Litestream's trace is debug, walship's most
// detailed.
func parseLevel(level string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug", "trace":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, usagef("invalid log level %q: use debug, info, warn or error", level)
}

// newLogger returns the logger of s, writing to e's standard error, or to
// its standard output with s.stdout.
func newLogger(e *env, s logSettings) (*slog.Logger, error) {
	lvl, err := parseLevel(s.level)
	if err != nil {
		return nil, err
	}
	var w io.Writer = e.stderr
	if s.stdout {
		w = e.stdout
	}
	opts := &slog.HandlerOptions{Level: lvl, AddSource: s.source}
	switch strings.ToLower(strings.TrimSpace(s.format)) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("invalid log type %q: use text or json", s.format)
	}
}
