package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/child"
)

// standbyFlags are replicate's standby settings.
type standbyFlags struct {
	on   bool
	hook string // the promotion hook's command line
}

// runStandby keeps the store's one database as a standby until it is
// promoted (walship.DB.Standby). It returns false, with no error, when a
// signal ended the wait: replicate then exits 0 without replicating.
func runStandby(ctx context.Context, log *slog.Logger, store *walship.Store, dirs int) (bool, walship.Promotion, error) {
	if len(store.DBs) != 1 || dirs > 0 {
		return false, walship.Promotion{}, usagef("-standby needs a config file with exactly one database (dbs: with one entry, no dir:), the one whose primary it stands by for")
	}
	db := store.DBs[0]
	sctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("standing by: following the replica into the database's path and watching the primary's lease", "db", db.Path())
	p, err := db.Standby(sctx, walship.StandbyOptions{})
	if errors.Is(err, context.Canceled) && sctx.Err() != nil && ctx.Err() == nil {
		log.Info("stopped standing by")
		return false, p, nil
	}
	if err != nil {
		return false, p, err
	}
	log.Warn("promoted: this node is now the primary", "db", db.Path(), "txid", p.TXID.String(), "previous_holder", p.Previous,
		"lease_unchanged_for", p.Observed.Round(time.Millisecond).String(), "expiry_to_promotion", p.PromotedAt.Sub(p.ExpiredAt).Round(time.Millisecond).String(),
		"kept_aside", p.KeptAside)
	return true, p, nil
}

// runPromotionHook runs the promotion hook once every database replicates
// (the promoted database is live and its lease renewed), with what the
// promotion did in its environment. Its failure is logged, not fatal: the
// node is the primary either way.
func runPromotionHook(ctx context.Context, log *slog.Logger, store *walship.Store, line string, p walship.Promotion) error {
	args, err := child.Split(line)
	if err != nil {
		return err
	}
	go func() {
		tick := time.NewTicker(readyPoll)
		defer tick.Stop()
		for !store.Ready() {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.Env = append(os.Environ(),
			"WALSHIP_PROMOTED_DB="+store.DBs[0].Path(),
			fmt.Sprintf("WALSHIP_PROMOTED_TXID=%d", p.TXID),
			"WALSHIP_PREVIOUS_HOLDER="+p.Previous)
		begun := time.Now()
		if err := cmd.Run(); err != nil {
			log.Error("the promotion hook failed; this node is the primary all the same", "command", line, "error", err)
			return
		}
		log.Info("ran the promotion hook", "command", line, "took", time.Since(begun).Round(time.Millisecond).String())
	}()
	return nil
}

// stopOnHandover calls stop, as a signal would, once a database of the
// store is asked to hand its lease over (walship promote).
func stopOnHandover(ctx context.Context, log *slog.Logger, store *walship.Store, stop func()) {
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if store.HandoverRequested() {
			log.Warn("handing the primary role over: stopping cleanly")
			stop()
			return
		}
	}
}
