package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/walship/walship/restore"
	follow_ "github.com/walship/walship/restore/follow"
)

// followFlags are the restore flags runFollow checks.
type followFlags struct {
	interval      time.Duration
	force         bool
	dryRun        bool
	ifDBNotExists bool
}

// runFollow runs restore -follow until SIGINT or SIGTERM.
func runFollow(ctx context.Context, e *env, src *source, outPath string, opts restore.Options, ff followFlags) error {
	switch {
	case ff.force:
		return usagef("-follow and -force cannot be used together: follow mode never replaces a database; delete it, or give another -o")
	case ff.dryRun:
		return usagef("-follow and -dry-run cannot be used together")
	case ff.ifDBNotExists:
		return usagef("-follow and -if-db-not-exists cannot be used together: follow mode goes on from its own copy and never touches another database")
	case opts.Target.TXID != 0 || !opts.Target.Timestamp.IsZero():
		return usagef("-follow follows the newest state: it cannot be used with -txid or -timestamp")
	case ff.interval <= 0:
		return usagef("-follow-interval %s: give a positive duration (e.g. 1s)", ff.interval)
	}
	log, err := newLogger(e, logSettings{level: "info", format: "text"})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = follow_.Run(ctx, src.client, outPath, follow_.Options{
		Interval:       ff.interval,
		IntegrityCheck: opts.IntegrityCheck,
		Parallelism:    opts.Parallelism,
		Logger:         log,
	})
	if errors.Is(err, follow_.ErrNotACopy) {
		return fmt.Errorf("%w (-f means follow, as in Litestream; to replace a database with a restore, use -force)", err)
	}
	return err
}
