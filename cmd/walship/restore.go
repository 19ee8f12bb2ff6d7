package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/restore"
	follow_ "github.com/walship/walship/restore/follow"
	"github.com/walship/walship/storage"
)

const restoreDescription = `
Restores a database from a replica. The argument is a replica URL ({urls})
or directory (-o is then required) or the path of a database listed in the
config file (its first replica, or the one named by -replica; -o defaults to
the database path).

The restore is written to OUT.tmp, verified against the checksums in the LTX
files and by SQLite, and only then renamed to OUT: it either produces the
replicated database or leaves nothing behind.

Up to -parallelism LTX files (default 8) are downloaded at once, each into a
temporary file next to OUT (OUT.tmp-fetch-N) that is deleted as soon as it has
been applied; the files are still applied strictly in order. -parallelism 1
streams each file straight into the database without temporary files.

-follow (or -f, as in Litestream) keeps OUT a current read-only copy: it
restores, then applies new LTX files as they appear (every -follow-interval),
each proved by its checksums before a page of it is written, each batch in
one SQLite transaction that readers of OUT never see half done. Stopped and
started again, it goes on from the copy's own state. It never overwrites a
database that is not its copy; -force replaces a database (-f no longer
does).

-dry-run prints the plan after reading the header and trailer of each of its
files: it fails, as the restore would, if they do not chain (a TXID missing,
a pre-apply checksum that is not the previous file's post-apply checksum, a
page size that changes). walship verify reads every file whole.`

// fileJSON is an LTX file in JSON output.
type fileJSON struct {
	Level     int      `json:"level"`
	MinTXID   ltx.TXID `json:"min_txid"`
	MaxTXID   ltx.TXID `json:"max_txid"`
	Size      int64    `json:"size"`
	CreatedAt string   `json:"created_at"`
}

func toFileJSON(f *ltx.FileInfo) fileJSON {
	return fileJSON{Level: f.Level, MinTXID: f.MinTXID, MaxTXID: f.MaxTXID, Size: f.Size, CreatedAt: f.CreatedAt.UTC().Format(timeFormat)}
}

// planJSON is the output of restore -dry-run -json.
type planJSON struct {
	DryRun  bool       `json:"dry_run"`
	Replica string     `json:"replica"`
	Output  string     `json:"output"`
	Target  string     `json:"target"`
	TXID    ltx.TXID   `json:"txid"`
	Bytes   int64      `json:"bytes"`
	Files   []fileJSON `json:"files"`
	Note    string     `json:"note,omitempty"`
}

// skippedJSON is the JSON output when -if-db-not-exists or
// -if-replica-exists made restore do nothing.
type skippedJSON struct {
	Skipped bool   `json:"skipped"`
	Reason  string `json:"reason"`
	Output  string `json:"output"`
}

func runRestore(ctx context.Context, e *env, args []string) error {
	flags := newFlagSet(e, "restore", "[flags] DB_PATH|REPLICA_URL", restoreDescription)
	cf := addConfigFlags(flags)
	cf.keys = addKeyFlags(flags)
	out := flags.String("o", "", "write the restored database to this `path` (required with a replica URL; default: the configured database path)")
	txidStr := flags.String("txid", "", "restore the state at exactly this `TXID` (hex, e.g. 1f or 000000000000001f)")
	tsStr := flags.String("timestamp", "", "restore the newest state written at or before this RFC 3339 `time` (e.g. 2025-01-02T15:04:05Z)")
	ifDBNotExists := flags.Bool("if-db-not-exists", false, "do nothing (exit 0) if the output database already exists")
	ifReplicaExists := flags.Bool("if-replica-exists", false, "do nothing (exit 0) if the replica holds no backup")
	integrity := flags.String("integrity-check", "quick", "check the restored database with SQLite: `mode` none, quick or full")
	force := flags.Bool("force", false, "replace the output database if it exists")
	var follow bool
	flags.BoolVar(&follow, "follow", false, "keep the output a current read-only copy: restore, then apply new LTX files as they appear, until stopped (never overwrites a database)")
	flags.BoolVar(&follow, "f", false, "same as -follow (as in Litestream; -force replaces a database)")
	followInterval := flags.Duration("follow-interval", follow_.DefaultInterval, "with -follow, how often to list the replica for new files")
	jsonOut := flags.Bool("json", false, "print the result (or the plan with -dry-run) as JSON; errors are printed as JSON on stderr")
	dryRun := flags.Bool("dry-run", false, "check the chain the restore would apply (headers and trailers), print it and exit without writing")
	parallelism := flags.Int("parallelism", restore.DefaultParallelism, "download up to `N` LTX files at once (1: one at a time, streamed without temporary files)")
	replicaName := flags.String("replica", "", "with a configured database: restore from the replica with this `name` (default: the first)")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	e.jsonErrors = *jsonOut
	if len(pos) != 1 {
		return usagef("restore takes one argument, the replica URL or the configured database path (got %d)", len(pos))
	}

	var opts restore.Options
	switch *integrity {
	case "none", "quick", "full":
		opts.IntegrityCheck = *integrity
	default:
		return usagef("-integrity-check %q: use none, quick or full", *integrity)
	}
	opts.Force = *force
	if *parallelism < 1 {
		return usagef("-parallelism %d: give at least 1 (1 downloads one file at a time)", *parallelism)
	}
	opts.Parallelism = *parallelism
	if *txidStr != "" && *tsStr != "" {
		return usagef("-txid and -timestamp cannot be used together; pick one target")
	}
	if *txidStr != "" {
		if opts.Target.TXID, err = parseTXID(*txidStr); err != nil {
			return err
		}
	}
	if *tsStr != "" {
		t, err := time.Parse(time.RFC3339, *tsStr)
		if err != nil {
			return usagef("-timestamp %q is not an RFC 3339 time; write it like 2025-01-02T15:04:05Z or 2025-01-02T15:04:05+02:00", *tsStr)
		}
		opts.Target.Timestamp = t
	}

	src, err := resolveSource(ctx, pos[0], cf, *replicaName)
	if err != nil {
		return err
	}
	defer src.close()
	outPath := *out
	if outPath == "" {
		if src.db == nil {
			return usagef("-o is required when restoring from a replica: where should the database be written? (e.g. -o /var/lib/app/app.db)")
		}
		outPath = src.db.Path
	}
	if outPath, err = filepath.Abs(outPath); err != nil {
		return err
	}
	// A replacement an interrupted restore left half done is finished or
	// rolled back before the checks below look at what is there.
	if err := restore.RecoverOutput(outPath); err != nil {
		return err
	}

	if *ifDBNotExists && !follow {
		if _, err := os.Stat(outPath); err == nil {
			msg := fmt.Sprintf("database %s already exists; nothing restored (-if-db-not-exists)", outPath)
			if *jsonOut {
				return e.printJSON(skippedJSON{Skipped: true, Reason: msg, Output: outPath})
			}
			fmt.Fprintln(e.stdout, msg)
			return nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check output %s: %w", outPath, err)
		}
	}
	if follow {
		return runFollow(ctx, e, src, outPath, opts, followFlags{interval: *followInterval, force: *force, dryRun: *dryRun, ifDBNotExists: *ifDBNotExists})
	}
	var outExists string // the existing file a restore would need -force to replace
	if !*force {
		if !*dryRun {
			if err := restore.CheckOutput(outPath, *force); err != nil {
				return err
			}
		} else if outExists, err = restore.ExistingOutput(outPath); err != nil {
			return err
		}
	}
	if fi, err := os.Stat(outPath); err == nil && fi.IsDir() {
		return fmt.Errorf("output %s is a directory; -o takes the path of the database file to write", outPath)
	}

	start := time.Now()
	listing, err := restore.List(ctx, src.client)
	var plan *restore.Plan
	if err == nil {
		plan, err = listing.Plan(opts.Target)
	}
	if err != nil {
		// A Litestream v0.3 backup restores what walship's LTX files do
		// not hold: everything, or the times before walship's history.
		old, oerr := restore.Litestream03For(ctx, src.client, opts.Target, err)
		if oerr != nil {
			return oerr
		}
		if old != nil {
			return restoreLitestream03(ctx, e, src, old, outPath, outExists, opts, *dryRun, *jsonOut, start)
		}
		if *ifReplicaExists && errors.Is(err, restore.ErrNoFiles) {
			msg := fmt.Sprintf("replica %s holds no backup; nothing restored (-if-replica-exists)", src.client)
			if *jsonOut {
				return e.printJSON(skippedJSON{Skipped: true, Reason: msg, Output: outPath})
			}
			fmt.Fprintln(e.stdout, msg)
			return nil
		}
		if errors.Is(err, restore.ErrNoFiles) {
			return fmt.Errorf("%w; check the replica URL, or pass -if-replica-exists to succeed without restoring", err)
		}
		return err
	}

	if *dryRun {
		// What a dry run can prove without downloading the files: the
		// headers and trailers chain as the restore will check them.
		var damaged []restore.Damaged
		if plan, damaged, err = restore.CheckListing(ctx, src.client, listing, plan, opts.Parallelism); err != nil {
			return err
		}
		warnDamaged(e, damaged)
		return printPlan(e, *jsonOut, src, plan, opts.Target, outPath, outExists)
	}

	if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
		return fmt.Errorf("create the output directory: %w", err)
	}
	m := newMeter(e, "restoring")
	opts.Progress = m.progress()
	res, err := restore.ApplyListing(ctx, src.client, listing, plan, outPath, opts)
	m.clear()
	if err != nil {
		return err
	}
	res.Duration = time.Since(start)
	warnDamaged(e, res.Damaged)
	if err := recordRestored(ctx, src, outPath); err != nil {
		return err
	}
	if *jsonOut {
		return e.printJSON(res)
	}
	fmt.Fprintf(e.stdout, "restored TXID %s to %s (%d %s, %s, %s)\n",
		res.TXID, res.Path, res.Files, plural(res.Files, "file", "files"), formatBytes(res.Bytes), formatDuration(res.Duration))
	return nil
}

func printPlan(e *env, asJSON bool, src *source, plan *restore.Plan, target restore.Target, outPath, outExists string) error {
	note := ""
	if outExists != "" {
		note = outExists + " already exists: the restore would fail without -force"
	}
	if asJSON {
		p := planJSON{DryRun: true, Replica: src.client.String(), Output: outPath, Target: target.String(), TXID: plan.TXID(), Bytes: plan.Size(), Files: []fileJSON{}, Note: note}
		for _, f := range plan.Files {
			p.Files = append(p.Files, toFileJSON(f))
		}
		return e.printJSON(p)
	}
	fmt.Fprintf(e.stdout, "restore of %s from %s to %s would apply %d %s (%s) and reach TXID %s:\n\n",
		target, src.client, outPath, len(plan.Files), plural(len(plan.Files), "file", "files"), formatBytes(plan.Size()), plan.TXID())
	if err := printFiles(e, plan.Files); err != nil {
		return err
	}
	if note != "" {
		fmt.Fprintf(e.stdout, "\nnote: %s\n", note)
	}
	fmt.Fprintf(e.stdout, "\ndry run: nothing was written\n")
	return nil
}

// printFiles prints LTX files as an aligned table.
func printFiles(e *env, files []*ltx.FileInfo) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LEVEL\tMIN_TXID\tMAX_TXID\tSIZE\tCREATED")
	for _, f := range files {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\n", f.Level, f.MinTXID, f.MaxTXID, f.Size, f.CreatedAt.UTC().Format(timeFormat))
	}
	return tw.Flush()
}

// parseTXID parses a TXID in hex, accepting fewer than 16 digits.
func parseTXID(s string) (ltx.TXID, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X")
	if h == "" || len(h) > 16 {
		return 0, usagef("-txid %q: give a TXID in hex with up to 16 digits (e.g. 1f or 000000000000001f)", s)
	}
	txid, err := ltx.ParseTXID(strings.Repeat("0", 16-len(h)) + strings.ToLower(h))
	if err != nil {
		return 0, usagef("-txid %q is not a hex TXID (e.g. 1f or 000000000000001f)", s)
	}
	if txid == 0 {
		return 0, usagef("-txid must be at least 1 (TXIDs start at 1); leave it out to restore the latest state")
	}
	return txid, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// warnDamaged says which files a restore went around.
func warnDamaged(e *env, damaged []restore.Damaged) {
	for _, d := range damaged {
		fmt.Fprintf(e.stderr, "warning: %s is damaged (%s); the restore reaches the same state without it, from the other files of the replica; walship verify shows which restore points it costs\n",
			storage.Describe(d.Level, d.MinTXID, d.MaxTXID), d.Problem)
	}
}

// recordRestored gives a configured database restored to its own path the
// identity of the database its replica belongs to (walship.RecordRestored,
// which replicate -restore-if-db-not-exists uses too): replicating it then
// goes on with the replica's history, without -takeover, even after the
// application wrote to it. A restore elsewhere (-o, or from a URL) is a
// copy, not the database, and records nothing.
func recordRestored(ctx context.Context, src *source, outPath string) error {
	if src.db == nil || src.db.Path != outPath {
		return nil
	}
	meta := src.db.MetaPath
	if meta == "" {
		meta = walship.MetaPath(outPath)
	}
	if err := walship.RecordRestored(ctx, src.client, meta); err != nil {
		return fmt.Errorf("restored %s, but %w: walship replicate may refuse it as another database than the replica's", outPath, err)
	}
	return nil
}
