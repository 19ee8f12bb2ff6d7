package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/backend"
	"github.com/walship/walship/verify"
)

const verifyDescription = `
Proves that a replica is whole, without writing a database. It reads every
LTX file of the replica once, whole, and checks its checksums and header;
checks that the files of each level follow each other by TXIDs and
checksums, that compacted files and snapshots agree with the chain they
stand for, and that a restore reaches every restore point. Given a database,
it also compares the replica's newest state with the database's, read
without blocking the application, and the replicas of one database with one
another.

The argument is a replica URL ({urls}) or directory; the path of a database
listed in the config file (each of its replicas, or the one named by
-replica); or DB_PATH REPLICA_URL. Without an argument, every database and
replica of the config file.

Each problem is printed with the file it concerns, what is wrong and what to
do. Exit status: 0 when every replica is whole; 1 when a problem was found;
2 for a mistake on the command line; 3 when a replica or database could not
be checked (unreachable store, bad credentials, unreadable config).`

// exitCouldNotCheck is verify's exit status when a check could not be made.
const exitCouldNotCheck = 3

// exitCoder is an error that chooses the process's exit status.
type exitCoder interface{ ExitCode() int }

// notCheckedError is a check that could not be made: verify exits 3.
type notCheckedError struct{ err error }

func (e notCheckedError) Error() string { return e.err.Error() }
func (e notCheckedError) Unwrap() error { return e.err }
func (notCheckedError) ExitCode() int   { return exitCouldNotCheck }

// notChecked marks err as a check that could not be made, unless it is a
// mistake on the command line.
func notChecked(err error) error {
	var ue usageError
	if err == nil || errors.As(err, &ue) {
		return err
	}
	return notCheckedError{err}
}

// target is a database (or none) and the replicas of it to verify.
type target struct {
	db       string // the database's path; "" for a replica alone
	staging  string // its staging directory
	replicas []*verifyReplica
}

// verifyReplica is one replica to verify, and what verifying it gave.
type verifyReplica struct {
	name   string // its name in the config, if any
	client storage.Client
	report *verify.Report
	err    error // the replica could not be checked
}

// verifyJSON is the output of verify -json.
type verifyJSON struct {
	Whole     bool                 `json:"whole"`
	Problems  int                  `json:"problems"`
	Replicas  []replicaVerifyJSON  `json:"replicas"`
	Databases []databaseVerifyJSON `json:"databases"`
}

type replicaVerifyJSON struct {
	DB      string         `json:"db,omitempty"`
	Name    string         `json:"name,omitempty"`
	Replica string         `json:"replica"`
	Error   string         `json:"error,omitempty"` // the replica could not be checked
	Report  *verify.Report `json:"report,omitempty"`
}

type databaseVerifyJSON struct {
	Path  string       `json:"path"`
	Error string       `json:"error,omitempty"` // the database could not be read
	Live  *verify.Live `json:"live,omitempty"`
}

func runValidate(ctx context.Context, e *env, args []string) error {
	return verifyAs(ctx, e, "validate", args)
}

func runVerify(ctx context.Context, e *env, args []string) error {
	return verifyAs(ctx, e, "verify", args)
}

func verifyAs(ctx context.Context, e *env, name string, args []string) error {
	flags := newFlagSet(e, name, "[flags] [DB_PATH | REPLICA_URL | DB_PATH REPLICA_URL]", verifyDescription)
	cf := addConfigFlags(flags)
	cf.keys = addKeyFlags(flags)
	jsonOut := flags.Bool("json", false, "print the reports as JSON; errors are printed as JSON on stderr")
	replicaName := flags.String("replica", "", "verify only the configured replica with this `name`")
	parallelism := flags.Int("parallelism", verify.DefaultParallelism, "read up to `N` LTX files at once")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	e.jsonErrors = *jsonOut
	if *parallelism < 1 {
		return usagef("-parallelism %d: give at least 1", *parallelism)
	}
	targets, closeAll, err := verifyTargets(ctx, pos, cf, *replicaName)
	defer closeAll()
	if err != nil {
		return notChecked(err)
	}

	dbs := checkTargets(ctx, e, targets, verify.Options{Parallelism: *parallelism})
	if err := ctx.Err(); err != nil {
		return notChecked(err) // interrupted: nothing was proved either way
	}
	out, n := summarize(targets, dbs)
	if *jsonOut {
		if err := e.printJSON(out); err != nil {
			return err
		}
	} else {
		printVerify(e.stdout, targets, dbs)
	}
	if err := n.verdict(name); err != nil {
		return err
	}
	if !*jsonOut {
		fmt.Fprintf(e.stdout, "%s: %d %s whole\n", name, n.replicas, plural(n.replicas, "replica", "replicas"))
	}
	return nil
}

// checkTargets verifies every replica, compares each database's replicas
// with it and with one another, and returns what the databases gave. On a
// terminal, each replica's reading shows its progress.
func checkTargets(ctx context.Context, e *env, targets []*target, opts verify.Options) []databaseVerifyJSON {
	var dbs []databaseVerifyJSON
	for _, t := range targets {
		before := verify.StagedTXID(t.staging)
		for _, r := range t.replicas {
			m := newMeter(e, "verifying "+r.client.String())
			opts.Progress = m.progress()
			r.report, r.err = verify.Replica(ctx, r.client, opts)
			m.clear()
		}
		if d := compareDatabase(ctx, t, before); d != nil {
			dbs = append(dbs, *d)
		}
		if reports := t.reports(); len(reports) > 1 {
			verify.CompareReplicas(reports...)
		}
	}
	return dbs
}

// counts are what the checks found, for the exit status.
type counts struct {
	problems, replicas, replicasWithProblems, replicasNotChecked, dbsNotChecked int
}

// summarize gathers the results as -json prints them, and counts them.
func summarize(targets []*target, dbs []databaseVerifyJSON) (verifyJSON, counts) {
	out := verifyJSON{Replicas: []replicaVerifyJSON{}, Databases: dbs}
	var n counts
	for _, t := range targets {
		for _, r := range t.replicas {
			n.replicas++
			j := replicaVerifyJSON{DB: t.db, Name: r.name, Replica: r.client.String(), Report: r.report}
			switch {
			case r.err != nil:
				n.replicasNotChecked++
				j.Error = r.err.Error()
			case !r.report.Whole():
				n.problems += len(r.report.Problems)
				n.replicasWithProblems++
			}
			out.Replicas = append(out.Replicas, j)
		}
	}
	for _, d := range dbs {
		if d.Error != "" {
			n.dbsNotChecked++
		}
	}
	if out.Databases == nil {
		out.Databases = []databaseVerifyJSON{}
	}
	out.Whole = n.problems == 0 && n.replicasNotChecked+n.dbsNotChecked == 0
	out.Problems = n.problems
	return out, n
}

// verdict is the error that gives the exit status: 1 when a problem was
// found, else 3 when something could not be checked; nil when all is whole.
func (n counts) verdict(name string) error {
	var unchecked []string
	if n.replicasNotChecked > 0 {
		unchecked = append(unchecked, fmt.Sprintf("%d of %d %s", n.replicasNotChecked, n.replicas, plural(n.replicas, "replica", "replicas")))
	}
	if n.dbsNotChecked > 0 {
		unchecked = append(unchecked, fmt.Sprintf("%d %s", n.dbsNotChecked, plural(n.dbsNotChecked, "database", "databases")))
	}
	switch {
	case n.problems > 0:
		msg := fmt.Sprintf("%s found %d %s in %d of %d %s", name, n.problems, plural(n.problems, "problem", "problems"),
			n.replicasWithProblems, n.replicas, plural(n.replicas, "replica", "replicas"))
		if len(unchecked) > 0 {
			msg += ", and could not check " + strings.Join(unchecked, " and ")
		}
		return errors.New(msg)
	case len(unchecked) > 0:
		return notCheckedError{fmt.Errorf("%s could not check %s (see above)", name, strings.Join(unchecked, " and "))}
	}
	return nil
}

func (t *target) reports() []*verify.Report {
	var out []*verify.Report
	for _, r := range t.replicas {
		if r.report != nil {
			out = append(out, r.report)
		}
	}
	return out
}

// compareDatabase compares the target's replicas with its database, if it
// has one here.
func compareDatabase(ctx context.Context, t *target, stagedBefore ltx.TXID) *databaseVerifyJSON {
	reports := t.reports()
	if t.db == "" || len(reports) == 0 {
		return nil
	}
	if _, err := os.Stat(t.db); errors.Is(err, fs.ErrNotExist) {
		for _, r := range reports {
			r.Notes = append(r.Notes, fmt.Sprintf("the database %s does not exist on this host: the replica was not compared with it", t.db))
		}
		return nil
	}
	d := &databaseVerifyJSON{Path: t.db}
	live, err := verify.ReadDatabase(ctx, t.db, t.staging)
	if err != nil {
		d.Error = err.Error()
		return d
	}
	live.StagedBefore = stagedBefore
	for _, r := range reports {
		live.Compare(r)
	}
	d.Live = live
	return d
}

// verifyTargets resolves the command line into databases and replicas. The
// returned function closes the replicas' clients; it is never nil.
func verifyTargets(ctx context.Context, pos []string, cf *configFlags, replicaName string) ([]*target, func(), error) {
	var opened []storage.Client
	closeAll := func() {
		for _, c := range opened {
			(&source{client: c}).close()
		}
	}
	open := func(t *target, name string, c storage.Client) {
		opened = append(opened, c)
		t.replicas = append(t.replicas, &verifyReplica{name: name, client: c})
	}
	switch len(pos) {
	case 0:
		cfg, err := cf.load(true)
		if err != nil {
			return nil, closeAll, err
		}
		if cfg == nil {
			return nil, closeAll, fmt.Errorf("nothing to verify: no config file at %s; pass a replica URL, a configured database path or DB_PATH REPLICA_URL, or point -config (or $%s) at a config file%s", *cf.path, config.PathEnv, config.LitestreamHint(*cf.path))
		}
		var targets []*target
		dbs := slices.Clone(cfg.DBs)
		// The databases of a directory are those in it now.
		for _, c := range cfg.Dirs {
			paths, err := (&walship.Dir{Path: c.Dir, Pattern: c.Pattern, Recursive: c.Recursive}).Databases()
			if err != nil {
				return nil, closeAll, notChecked(fmt.Errorf("%s:%d: cannot list the databases of the directory %s: %w", *cf.path, c.Line, c.Dir, err))
			}
			for _, p := range paths {
				one, err := c.ForDatabase(p)
				if err != nil {
					return nil, closeAll, err
				}
				dbs = append(dbs, one)
			}
		}
		for _, db := range dbs {
			t, err := configTarget(ctx, cfg, db, *cf.path, replicaName, cf.keys, open)
			if err != nil {
				return nil, closeAll, err
			}
			if len(t.replicas) > 0 {
				targets = append(targets, t)
			}
		}
		if len(targets) == 0 {
			if replicaName != "" {
				return nil, closeAll, usagef("no database of %s has a replica named %q", *cf.path, replicaName)
			}
			return nil, closeAll, fmt.Errorf("config %s lists no database with a replica", *cf.path)
		}
		return targets, closeAll, nil
	case 1:
		src, err := resolveSource(ctx, pos[0], cf, replicaName)
		if err != nil {
			return nil, closeAll, err
		}
		if src.db == nil {
			t := &target{}
			open(t, "", src.client)
			return []*target{t}, closeAll, nil
		}
		src.close() // opened again below, with the database's other replicas
		cfg, err := cf.load(true)
		if err != nil {
			return nil, closeAll, err
		}
		t, err := configTarget(ctx, cfg, src.db, *cf.path, replicaName, cf.keys, open)
		return []*target{t}, closeAll, err
	case 2:
		if cf.explicit() {
			return nil, closeAll, usagef("-config cannot be combined with DB_PATH REPLICA_URL; use one or the other")
		}
		if replicaName != "" {
			return nil, closeAll, usagef("-replica selects a replica of a configured database; it cannot be used with DB_PATH REPLICA_URL")
		}
		dbPath, err := filepath.Abs(pos[0])
		if err != nil {
			return nil, closeAll, err
		}
		c, err := backend.NewOpener(slog.New(slog.DiscardHandler)).OpenURL(ctx, pos[1], nil)
		if err != nil {
			return nil, closeAll, err
		}
		if c, err = cf.keys.wrap(c); err != nil {
			return nil, closeAll, err
		}
		t := &target{db: dbPath, staging: walship.MetaPath(dbPath)}
		open(t, "", c)
		return []*target{t}, closeAll, nil
	default:
		return nil, closeAll, usagef("verify takes a replica URL, a configured database path, DB_PATH REPLICA_URL, or nothing to verify the whole config file (got %d arguments)", len(pos))
	}
}

// configTarget opens the replicas of a configured database: every one, or
// the one named name.
func configTarget(ctx context.Context, cfg *config.Config, db *config.DB, cfgPath, name string, keys *keyFlags, open func(*target, string, storage.Client)) (*target, error) {
	t := &target{db: db.Path, staging: db.MetaPath}
	if t.staging == "" {
		t.staging = walship.MetaPath(db.Path)
	}
	op := backend.NewOpener(slog.New(slog.DiscardHandler))
	for _, rname := range db.ReplicaNames() {
		if name != "" && rname != name {
			continue
		}
		src, err := sourceFromDB(ctx, op, cfg, db, cfgPath, rname, keys)
		if err != nil {
			return nil, err
		}
		open(t, rname, src.client)
	}
	return t, nil
}

// printVerify prints what was checked and found, replica by replica.
func printVerify(w io.Writer, targets []*target, dbs []databaseVerifyJSON) {
	for _, t := range targets {
		for _, r := range t.replicas {
			title := "replica " + r.client.String()
			if r.name != "" {
				title += " (" + r.name + ")"
			}
			if t.db != "" {
				title += " of " + t.db
			}
			fmt.Fprintln(w, title)
			if r.err != nil {
				fmt.Fprintf(w, "  could not check: %v\n\n", r.err)
				continue
			}
			printReport(w, r.report)
			fmt.Fprintln(w)
		}
	}
	for _, d := range dbs {
		if d.Error != "" {
			fmt.Fprintf(w, "database %s\n  could not check: %s\n\n", d.Path, d.Error)
		}
	}
}

func printReport(w io.Writer, r *verify.Report) {
	var levels []string
	for _, l := range r.Levels {
		levels = append(levels, fmt.Sprintf("level %d: %d %s, %s", l.Level, l.Files, plural(l.Files, "file", "files"), formatBytes(l.Bytes)))
	}
	fmt.Fprintf(w, "  read %d %s, %s", r.Files, plural(r.Files, "file", "files"), formatBytes(r.Bytes))
	if len(levels) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(levels, "; "))
	}
	fmt.Fprintln(w)
	if sound := r.FilesWithChecksums + r.FilesWithoutChecksums; sound > 0 {
		fmt.Fprintf(w, "  checksums: %d of %d sound files carry database checksums\n", r.FilesWithChecksums, sound)
	}
	if p := r.Newest; p != nil {
		fmt.Fprintf(w, "  newest: TXID %s, %s\n", p.TXID, p.Time.UTC().Format(timeFormat))
	}
	if p := r.OldestRestorable; p != nil {
		fmt.Fprintf(w, "  oldest restorable: TXID %s, %s\n", p.TXID, p.Time.UTC().Format(timeFormat))
	}
	if n := r.RestorePoints + r.UnreachablePoints; n > 0 {
		fmt.Fprintf(w, "  restore points: %d, %d restorable\n", n, r.RestorePoints)
	}
	if d := r.Database; d != nil {
		fmt.Fprintf(w, "  database: %s: %s\n", d.Status, d.Message)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  problem (%s) %s: %s\n    fix: %s\n", p.Kind, p.Object, p.Message, p.Fix)
	}
	if r.Whole() {
		fmt.Fprintln(w, "  whole")
	} else {
		fmt.Fprintf(w, "  %d %s\n", len(r.Problems), plural(len(r.Problems), "problem", "problems"))
	}
}
