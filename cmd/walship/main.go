// Command walship replicates SQLite databases to replicas of LTX files and
// restores them. Its verbs, flags and configuration keys follow Litestream 0.5.
//
// Usage:
//
//	walship replicate [flags] [DB_PATH REPLICA_URL]
//	walship restore   [flags] DB_PATH|REPLICA_URL
//	walship ltx       [flags] DB_PATH|REPLICA_URL
//	walship verify    [flags] [DB_PATH | REPLICA_URL | DB_PATH REPLICA_URL]
//	walship databases [flags]
//	walship status    [flags]
//	walship sync      [flags] DB_PATH
//	walship list      [flags]
//	walship info      [flags] [DB_PATH]
//	walship register  [flags] DB_PATH REPLICA_URL
//	walship unregister [flags] DB_PATH
//	walship stop      [flags] DB_PATH
//	walship start     [flags] DB_PATH
//	walship version
//
// Run "walship VERB -h" for the flags of a verb.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/walship/walship/config"
	"github.com/walship/walship/internal/lease"
	"github.com/walship/walship/storage/backend"
)

// Version is the release version, set at build time with
// -ldflags "-X main.Version=v1.2.3".
var Version = "dev"

func main() {
	stopProfile := startProfile(os.Getenv(profileEnv), os.Stderr)
	code := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	os.Exit(code)
}

// env carries a verb's output streams.
type env struct {
	stdout, stderr io.Writer
	// jsonErrors makes errors print as {"error": "..."} (set by verbs once
	// they have parsed -json).
	jsonErrors bool
}

// verb is one subcommand.
type verb struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

var verbs = []verb{
	{"replicate", "replicate databases continuously (or once, with -once)", runReplicate},
	{"restore", "restore a database from a replica", runRestore},
	{"ltx", "list the LTX files of a replica", runLTX},
	{"verify", "prove that a replica is whole, without writing a database", runVerify},
	{"validate", "same as verify", runValidate},
	{"databases", "list the databases and replicas of the config file", runDatabases},
	{"status", "show each replica's lag, newest TXID, snapshot and last error", runStatus},
	{"sync", "capture a database now; with -wait, until every replica holds it", runSync},
	{"promote", "on a standby: ask the primary to hand its lease over, losing no commit", runPromote},
	{"list", "list the databases of the running walship (control socket)", runList},
	{"info", "show the running walship, or one database's state (control socket)", runInfo},
	{"register", "replicate one more database in the running walship (control socket)", runRegister},
	{"unregister", "flush a database and replicate it no more (control socket)", runUnregister},
	{"stop", "pause a database's replication; start resumes it (control socket)", runStop},
	{"start", "resume a stopped database's replication, gap filled (control socket)", runStart},
	{"keygen", "write a new encryption key file", runKeygen},
	{"version", "print the version", runVersion},
}

func findVerb(name string) *verb {
	for i := range verbs {
		if verbs[i].name == name {
			return &verbs[i]
		}
	}
	return nil
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "walship replicates SQLite databases to replicas of LTX files (Litestream 0.5 compatible).\n\n")
	fmt.Fprintf(w, "Usage:\n\n\twalship <command> [flags] [arguments]\n\nCommands:\n\n")
	for _, v := range verbs {
		fmt.Fprintf(w, "\t%-10s %s\n", v.name, v.summary)
	}
	fmt.Fprintf(w, "\nRun \"walship <command> -h\" for the flags of a command.\n")
	fmt.Fprintf(w, "The config file is -config PATH, else $%s, else %s if it exists, else $%s, else %s.\n",
		config.PathEnv, config.DefaultPath, config.LitestreamPathEnv, config.DefaultPath)
}

// run is the whole program: it returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if v := findVerb(args[1]); v != nil {
				return run(ctx, []string{v.name, "-h"}, stdout, stderr)
			}
			fmt.Fprintf(stderr, "walship: unknown command %q\n\n", args[1])
			printUsage(stderr)
			return 2
		}
		printUsage(stdout)
		return 0
	case "-version", "--version":
		name = "version"
	}
	v := findVerb(name)
	if v == nil {
		fmt.Fprintf(stderr, "walship: unknown command %q\n\n", name)
		printUsage(stderr)
		return 2
	}
	e := &env{stdout: stdout, stderr: stderr}
	return e.exit(v.name, v.run(ctx, e, args[1:]))
}

// exit reports err and returns the exit code.
func (e *env) exit(verbName string, err error) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errFlagParse):
		// The flag package already printed the problem and the usage.
		return 2
	case errors.As(err, &ue):
		if e.jsonErrors {
			e.printJSONError(err)
		} else {
			fmt.Fprintf(e.stderr, "walship: %v\nRun 'walship %s -h' for usage.\n", err, verbName)
		}
		return 2
	default:
		if e.jsonErrors {
			e.printJSONError(err)
		} else {
			fmt.Fprintf(e.stderr, "walship: %v\n", err)
		}
		var ec exitCoder
		if errors.As(err, &ec) {
			return ec.ExitCode() // verify's 3: it could not check
		}
		if errors.Is(err, lease.ErrHeld) {
			return exitLeaseHeld
		}
		return 1
	}
}

func (e *env) printJSONError(err error) {
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	fmt.Fprintf(e.stderr, "%s\n", b)
}

func (e *env) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// errFlagParse means the flag package rejected the command line and printed
// why.
var errFlagParse = errors.New("invalid flags")

// newFlagSet returns a flag set whose usage shows synopsis and description.
func newFlagSet(e *env, name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: walship %s %s\n\n%s\n", name, synopsis, wrap(strings.ReplaceAll(strings.TrimSpace(description), "{urls}", strings.Join(backend.Forms(), ", ")), 78))
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(w, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// wrap reflows each paragraph of s (paragraphs are separated by blank lines)
// to lines of at most width columns.
func wrap(s string, width int) string {
	var paras []string
	for _, p := range strings.Split(s, "\n\n") {
		var b strings.Builder
		n := 0
		for _, w := range strings.Fields(p) {
			if n > 0 && n+1+len(w) > width {
				b.WriteByte('\n')
				n = 0
			} else if n > 0 {
				b.WriteByte(' ')
				n++
			}
			b.WriteString(w)
			n += len(w)
		}
		paras = append(paras, b.String())
	}
	return strings.Join(paras, "\n\n")
}

// parseArgs parses flags anywhere on the command line ("restore REPLICA -o
// OUT" works as well as "restore -o OUT REPLICA") and returns the positional
// arguments. Everything after "--" is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errFlagParse
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// isSet reports whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// configFlags are the flags shared by every verb that reads the config file.
type configFlags struct {
	fs          *flag.FlagSet
	path        *string
	noExpandEnv *bool
	keys        *keyFlags // nil for commands without them
}

func addConfigFlags(fs *flag.FlagSet) *configFlags {
	return &configFlags{
		fs:          fs,
		path:        fs.String("config", config.Path(""), "read the configuration from this `file` ($"+config.PathEnv+" sets the default)"),
		noExpandEnv: fs.Bool("no-expand-env", false, "do not expand $VAR and ${VAR} in the config file"),
	}
}

// explicit reports whether -config was given.
func (c *configFlags) explicit() bool { return isSet(c.fs, "config") }

// load reads the config file. When -config was not given and the default file
// does not exist, it returns (nil, nil) if optional is true.
func (c *configFlags) load(optional bool) (*config.Config, error) {
	path := *c.path
	if path == "" {
		return nil, usagef("-config needs a file path")
	}
	if optional && !c.explicit() {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	return config.Load(path, !*c.noExpandEnv)
}

// formatBytes formats a size with decimal units: "812 B", "3.2 MB".
func formatBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// formatDuration rounds a duration for humans: "1.4s", "83ms".
func formatDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

// timeFormat is RFC 3339 with milliseconds, used for LTX timestamps.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"
