package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship/internal/control"
	"github.com/walship/walship/storage/backend"
)

// The verbs that change the databases of a running walship replicate
// through its control socket: register, unregister, start and stop.

const registerDescription = `
Asks the running walship replicate to replicate one more database, DB_PATH,
to REPLICA_URL (or -replica URL, as Litestream's register takes it): {urls}
or a directory path. The database is replicated exactly as one of the config
file would be: the file's top-level settings (levels, snapshots, retention,
credentials), an encryption key given with -encryption-key-path (a file the
running walship reads). It replicates until walship stops or walship
unregister; it is not written to the config file, so a restart forgets it.

The socket is found as for walship sync. walship replicate keeps running
with no database when its control socket is enabled, so that databases can
be registered later.`

const unregisterDescription = `
Asks the running walship replicate to replicate DB_PATH no more: it captures
the database's last commits, gives the replicas up to -timeout to receive
them, and forgets the database (a database of the config file comes back at
the next start). The database itself is left alone. Exits 1 if a replica did
not receive the last commits in time. The socket is found as for walship
sync.`

const stopDescription = `
Asks the running walship replicate to pause the replication of DB_PATH: as
unregister, its last commits are captured and flushed, but walship keeps the
database (walship list shows it paused) until walship start. The application
goes on using the database meanwhile; nothing it commits is lost: start
ships it. Exits 1 if a replica did not receive the last commits in time.`

const startDescription = `
Asks the running walship replicate to resume the replication of DB_PATH,
stopped with walship stop (or after a failure, once its cause is fixed).
What was committed while it was stopped is shipped, from the WAL or, if the
WAL was checkpointed meanwhile, with a snapshot: the replica's history has
no gap. walship sync -wait DB_PATH then waits until the replicas hold it.`

func runRegister(ctx context.Context, e *env, args []string) error {
	flags := newFlagSet(e, "register", "[flags] DB_PATH [REPLICA_URL]", registerDescription)
	sf := addSocketFlags(flags, control.DefaultStopTimeout)
	replica := flags.String("replica", "", "the replica's `URL` (or give it as REPLICA_URL)")
	keys := addKeyFlags(flags)
	jsonOut := flags.Bool("json", false, "print the answer as JSON")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	e.jsonErrors = *jsonOut
	switch {
	case len(pos) == 2 && *replica != "":
		return usagef("give the replica once: as REPLICA_URL or with -replica, not both")
	case len(pos) == 2:
		*replica = pos[1]
	case len(pos) != 1:
		return usagef("register takes DB_PATH and REPLICA_URL (got %d arguments)", len(pos))
	case *replica == "":
		return usagef("register needs a replica: walship register DB_PATH REPLICA_URL (or -replica URL)")
	}
	// A mistake in the URL is said here, before the socket is asked.
	if _, _, err := backend.Parse(*replica); err != nil {
		return err
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, sf.timeout.d)
	defer cancel()
	resp, err := c.Register(ctx, control.RegisterRequest{
		Path: pos[0], ReplicaURL: *replica,
		EncryptionKeyPath: *keys.path, EncryptionOldKeyPaths: keys.oldPaths(),
	})
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if *jsonOut {
		return e.printJSON(resp)
	}
	switch resp.Phase {
	case "replicating":
		fmt.Fprintf(e.stdout, "%s: registered; the running walship replicates it to %s\n", resp.Path, backend.Redact(*replica))
	case "waiting":
		fmt.Fprintf(e.stdout, "%s: registered; the running walship replicates it to %s once the file is created\n", resp.Path, backend.Redact(*replica))
	default:
		fmt.Fprintf(e.stdout, "%s: registered, to %s; it is %s (walship list shows its state, walship info %s why it does not replicate)\n", resp.Path, backend.Redact(*replica), resp.Phase, resp.Path)
	}
	return nil
}

func runUnregister(ctx context.Context, e *env, args []string) error {
	return changeState(ctx, e, args, "unregister", unregisterDescription, (*control.Client).Unregister)
}

func runStop(ctx context.Context, e *env, args []string) error {
	return changeState(ctx, e, args, "stop", stopDescription, (*control.Client).Stop)
}

func runStart(ctx context.Context, e *env, args []string) error {
	return changeState(ctx, e, args, "start", startDescription, (*control.Client).Start)
}

// changeState runs a verb that takes one DB_PATH and asks the socket to
// change that database's state.
func changeState(ctx context.Context, e *env, args []string, verb, description string, ask func(*control.Client, context.Context, string, time.Duration) (control.StateResponse, error)) error {
	flags := newFlagSet(e, verb, "[flags] DB_PATH", description)
	sf := addSocketFlags(flags, control.DefaultStopTimeout)
	jsonOut := flags.Bool("json", false, "print the answer as JSON")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	e.jsonErrors = *jsonOut
	if len(pos) != 1 {
		return usagef("%s takes one DB_PATH (got %d arguments)", verb, len(pos))
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, sf.timeout.d+answerMargin)
	defer cancel()
	resp, err := ask(c, ctx, pos[0], sf.timeout.d)
	if err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	if *jsonOut {
		if err := e.printJSON(resp); err != nil {
			return err
		}
	} else {
		printState(e.stdout, resp)
	}
	if resp.Status != "started" && resp.Status != "already_running" && resp.ReplicatedTXID < resp.TXID {
		return fmt.Errorf("%s: %s: the replicas did not receive its last commits in time: every replica holds TXID %s, not %s; walship start (or register) it again to ship them, and walship info %s says why",
			verb, resp.Path, ltx.TXID(resp.ReplicatedTXID), ltx.TXID(resp.TXID), resp.Path)
	}
	return nil
}

func printState(w io.Writer, resp control.StateResponse) {
	what := map[string]string{
		"unregistered":    "unregistered; walship replicates it no more",
		"stopped":         "stopped; walship start resumes its replication",
		"already_stopped": "stopped already; walship start resumes its replication",
		"started":         "replicating again",
		"already_running": "replicating already",
	}[resp.Status]
	if what == "" {
		what = resp.Status
	}
	fmt.Fprintf(w, "%s: %s (TXID %s, on every replica %s)\n", resp.Path, what, ltx.TXID(resp.TXID), ltx.TXID(resp.ReplicatedTXID))
}
