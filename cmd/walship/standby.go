package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/child"
	"github.com/walship/walship/internal/lease"
	"github.com/walship/walship/storage"
)

// exitLeaseHeld is replicate's exit status when another node holds the
// primary role's lease (sysexits' EX_NOPERM): a service manager should not
// restart it as a primary (systemd: RestartPreventExitStatus=77) but start
// it as the standby.
const exitLeaseHeld = 77

// standbyFlags are replicate's standby settings.
type standbyFlags struct {
	on   bool   // stand by (-standby, or -standby=auto with the lease held by another node)
	auto bool   // -standby=auto: the primary unless another node holds the lease
	hook string // the promotion hook's command line
}

// standbyFlag is -standby's flag.Value: a boolean flag that also takes
// "auto".
type standbyFlag struct{ sb *standbyFlags }

func (f standbyFlag) IsBoolFlag() bool { return true }

func (f standbyFlag) String() string {
	switch {
	case f.sb == nil || !f.sb.on && !f.sb.auto:
		return "false"
	case f.sb.auto:
		return "auto"
	}
	return "true"
}

func (f standbyFlag) Set(v string) error {
	switch v {
	case "auto":
		f.sb.on, f.sb.auto = false, true
	case "true", "1":
		f.sb.on, f.sb.auto = true, false
	case "false", "0":
		f.sb.on, f.sb.auto = false, false
	default:
		return fmt.Errorf("want true, false or auto, got %q", v)
	}
	return nil
}

// heldElsewhere returns the lease's holder when another node holds, or
// held, the primary role of the store's one database: a record that names
// another database or host, released or not (a released lease is taken
// over by a standby at its first look, with the replica's every commit;
// a primary would be refused it). A record naming this database on this
// host is its previous process's, whose role this one takes back after
// the TTL, unless a standby took it first.
func heldElsewhere(ctx context.Context, store *walship.Store) (string, error) {
	if len(store.DBs) != 1 || len(store.DBs[0].Replicas()) != 1 {
		return "", nil // the standby's own checks say what is wrong
	}
	db := store.DBs[0]
	rec, _, err := lease.Read(ctx, db.Replicas()[0].Client)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	if rec.Of(host, db.Path()) {
		return "", nil
	}
	return rec.String(), nil
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

// demotion runs the demotion hook (-demote-hook) once this node stops
// being the primary of a database: its lease lost, or released in a
// handover. For an application walship does not run (-exec stops its
// own), or a floating IP to give up.
type demotion struct {
	log  *slog.Logger
	line string // the hook's command line; "" for none
	once sync.Once
}

// leaseLost returns the error of a database of store that lost its lease
// on the primary role; nil while none did.
func leaseLost(store *walship.Store) error {
	for _, db := range store.Databases() {
		if err := db.Halted(); errors.Is(err, lease.ErrLost) {
			return err
		}
	}
	return nil
}

// handedOver reports whether a database of store released its lease (a
// clean stop, or walship promote).
func handedOver(store *walship.Store) bool {
	for _, db := range store.Databases() {
		if h := db.LeaseHolder(); h != nil && errors.Is(h.Valid(), lease.ErrReleased) {
			return true
		}
	}
	return false
}

// run runs the hook once, with why in WALSHIP_REASON, and kills it after
// the lease's stop grace: it must be done before a standby may take over.
func (d *demotion) run(store *walship.Store, why string) {
	if d.line == "" {
		return
	}
	d.once.Do(func() {
		args, err := child.Split(d.line)
		if err != nil {
			d.log.Error("the demotion hook's command line does not split", "command", d.line, "error", err)
			return
		}
		grace := leaseStopGrace(store)
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.Env = append(os.Environ(), "WALSHIP_REASON="+why)
		begun := time.Now()
		if err := cmd.Run(); err != nil {
			d.log.Error("the demotion hook failed", "command", d.line, "within", grace.String(), "error", err)
			return
		}
		d.log.Info("ran the demotion hook", "command", d.line, "took", time.Since(begun).Round(time.Millisecond).String())
	})
}

// watchRole watches the store's hold on the primary role until ctx ends,
// looking at the databases each time changed says one lost its lease or
// was asked to hand it over (walship.Options.RoleChanged): an idle
// process wakes for nothing. Once a database lost its lease it sends the
// error on lost (buffered), runs the demotion hook and calls stop, if
// set; with handovers, once a database is asked to hand its lease over
// (walship promote) it calls stop, as a signal would, and the run's clean
// end releases the lease.
func watchRole(ctx context.Context, store *walship.Store, changed <-chan struct{}, d *demotion, stop func(), handovers bool, lost chan<- error) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		if err := leaseLost(store); err != nil {
			d.log.Error("this node lost the primary role: stopping", "error", err)
			lost <- err
			d.run(store, "lost: "+err.Error())
			if stop != nil {
				stop()
			}
			return
		}
		if handovers && store.HandoverRequested() {
			d.log.Warn("handing the primary role over: stopping cleanly")
			stop()
			return
		}
	}
}
