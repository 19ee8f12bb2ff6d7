package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/walship/walship/restore"
	"github.com/walship/walship/restore/litestream03"
)

// objectJSON is an object of a Litestream v0.3 backup in JSON output.
type objectJSON struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	Written string `json:"written"`
	// Use is "snapshot", "apply" (a WAL segment applied) or "check" (a
	// segment after the target, read to check the snapshot).
	Use string `json:"use"`
}

// planV03JSON is the output of restore -dry-run -json for a Litestream v0.3
// backup.
type planV03JSON struct {
	DryRun     bool         `json:"dry_run"`
	Replica    string       `json:"replica"`
	Output     string       `json:"output"`
	Target     string       `json:"target"`
	Format     string       `json:"format"`
	Generation string       `json:"generation"`
	Bytes      int64        `json:"bytes"`
	Objects    []objectJSON `json:"objects"`
	Note       string       `json:"note,omitempty"`
}

// restoreLitestream03 is runRestore for a replica whose Litestream v0.3
// backup the restore reads.
func restoreLitestream03(ctx context.Context, e *env, src *source, b *litestream03.Backup, outPath, outExists string, opts restore.Options, dryRun, asJSON bool, start time.Time) error {
	if dryRun {
		plan, err := b.Plan(opts.Target.Timestamp)
		if err != nil {
			return err
		}
		return printV03Plan(e, asJSON, src, plan, opts.Target, outPath, outExists)
	}
	if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
		return fmt.Errorf("create the output directory: %w", err)
	}
	res, err := restore.RestoreLitestream03(ctx, src.client, b, outPath, opts)
	if err != nil {
		return err
	}
	res.Duration = time.Since(start)
	r := res.Litestream03
	for _, s := range r.Skipped {
		fmt.Fprintf(e.stderr, "warning: %s; the restore reached the same state from an older snapshot\n", s)
	}
	if asJSON {
		return e.printJSON(res)
	}
	at := fmt.Sprintf("WAL index %08x offset %d", r.Index, r.Offset)
	if r.Offset == 0 {
		at = "its snapshot of WAL index " + fmt.Sprintf("%08x", r.Index)
	}
	fmt.Fprintf(e.stdout, "restored the Litestream v0.3 backup, generation %s, %s (written %s), to %s (%d %s, %s, %s)\n",
		r.Generation, at, r.Time.UTC().Format(timeFormat), res.Path,
		res.Files, plural(res.Files, "object", "objects"), formatBytes(res.Bytes), formatDuration(res.Duration))
	return nil
}

func printV03Plan(e *env, asJSON bool, src *source, plan *litestream03.Plan, target restore.Target, outPath, outExists string) error {
	note := ""
	if outExists != "" {
		note = outExists + " already exists: the restore would fail without -force"
	}
	objs := []objectJSON{{Name: plan.Snapshot.Object.Name, Size: plan.Snapshot.Object.Size, Written: plan.Snapshot.Object.ModTime.UTC().Format(timeFormat), Use: "snapshot"}}
	for _, segs := range []struct {
		use  string
		list []litestream03.Segment
	}{{"apply", plan.Segments}, {"check", plan.Window}} {
		for _, s := range segs.list {
			objs = append(objs, objectJSON{Name: s.Object.Name, Size: s.Object.Size, Written: s.Object.ModTime.UTC().Format(timeFormat), Use: segs.use})
		}
	}
	if asJSON {
		return e.printJSON(planV03JSON{DryRun: true, Replica: src.client.String(), Output: outPath, Target: target.String(),
			Format: "litestream-v0.3", Generation: plan.Generation, Bytes: plan.Size(), Objects: objs, Note: note})
	}
	fmt.Fprintf(e.stdout, "restore of %s from %s to %s would read its Litestream v0.3 backup, generation %s: %d %s (%s):\n\n",
		target, src.client, outPath, plan.Generation, len(objs), plural(len(objs), "object", "objects"), formatBytes(plan.Size()))
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USE\tSIZE\tWRITTEN\tOBJECT")
	for _, o := range objs {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", o.Use, o.Size, o.Written, o.Name)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(plan.Window) > 0 {
		fmt.Fprintf(e.stdout, "\nthe segments to check, written after the target, are read to prove that the snapshot holds none of their changes\n")
	}
	if note != "" {
		fmt.Fprintf(e.stdout, "\nnote: %s\n", note)
	}
	fmt.Fprintf(e.stdout, "\ndry run: nothing was written (the objects are checked as they are read, by the restore)\n")
	return nil
}

// printV03Backup lists the generations of a Litestream v0.3 backup.
func printV03Backup(e *env, b *litestream03.Backup) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GENERATION\tSNAPSHOTS\tWAL_SEGMENTS\tFIRST_WRITTEN\tLAST_WRITTEN")
	for _, g := range b.Generations {
		first, last := g.Span()
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", g.Name, len(g.Snapshots), len(g.Segments), first.UTC().Format(timeFormat), last.UTC().Format(timeFormat))
	}
	return tw.Flush()
}
