package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/lease"
)

const promoteDescription = `
A manual switchover that loses no commit, run on the standby's machine with
the standby's config file (one database, with lease-ttl): it asks the
primary holding the database's lease to hand over. The primary reads the
request at its next renewal (within a third of the TTL), stops its
application (-exec) or stops replicating, waits until the replica holds its
last commit, and releases the lease; the standby (walship replicate
-standby) then takes it at once and promotes with every commit. promote
waits until the lease names this config's database, or -timeout.`

func runPromote(ctx context.Context, e *env, args []string) error {
	flags := newFlagSet(e, "promote", "[flags]", promoteDescription)
	cf := addConfigFlags(flags)
	timeout := flags.Duration("timeout", time.Minute, "how long to wait for the standby's promotion")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("promote takes no argument (got %d); give the standby's config file with -config", len(pos))
	}
	cfg, err := cf.load(true)
	if err != nil {
		return err
	}
	if cfg == nil || len(cfg.DBs) != 1 || cfg.DBs[0].LeaseTTL == nil {
		return usagef("promote needs the standby's config file (-config) with exactly one database, with lease-ttl")
	}
	store, err := walship.FromConfig(ctx, cfg, *cf.path, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer store.Close()
	db := store.DBs[0]
	c := db.Replicas()[0].Client
	host, _ := os.Hostname()
	if held, _, err := lease.Read(ctx, c); err == nil && held.Of(host, db.Path()) && !held.Released {
		return fmt.Errorf("the lease is held by this database already (%s): nothing to promote", held)
	}
	asked, err := lease.RequestHandover(ctx, c, fmt.Sprintf("walship promote for %s on %s", db.Path(), host), time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "asked %s to hand over; waiting for the standby's promotion\n", asked)
	deadline := time.Now().Add(*timeout)
	for {
		rec, _, err := lease.Read(ctx, c)
		if err == nil && rec.Node != asked.Node && rec.Path == db.Path() && !rec.Released {
			if !rec.HandedOver && !asked.Released {
				// The primary did not release the lease: it expired,
				// so the primary stopped without its last commits in
				// the replica (or died meanwhile).
				return fmt.Errorf("%s is the primary, but the previous primary did not hand over cleanly: its lease expired instead of being released, so its commits after TXID %d may be lost; its log says why (it could not ship them within shutdown-sync-timeout, or it stopped)", db.Path(), rec.TXID)
			}
			fmt.Fprintf(e.stdout, "%s is the primary: it holds the lease since %s, at TXID %d, handed over with every commit\n", db.Path(), rec.Since.UTC().Format(time.RFC3339), rec.TXID)
			if !asked.Application {
				fmt.Fprintf(e.stderr, "warning: the previous primary (%s) does not run its application under walship (replicate -exec): walship there stopped writing the replica, but the application may still be committing to its own database, and those commits are not in the new primary; stop it\n", asked)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the standby %s was not promoted within %s (the lease: %v %v): is walship replicate -standby running with this config, and the primary reachable?", db.Path(), *timeout, rec, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
