package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
	"github.com/walship/walship/config"
	"github.com/walship/walship/internal/control"
)

// The verbs that talk to a running walship replicate through its control
// socket: sync, list and info (status asks it too).

const syncDescription = `
Asks the running walship replicate to capture DB_PATH's last commits now,
whatever its sync interval, and prints the TXID captured.

With -wait, it returns only once every replica of the database holds that
TXID: uploaded, and restorable from each replica. It is the durability
barrier an application runs after a commit it must not lose. If a replica
is still behind when -timeout passes, it exits 1 naming the replica, the
TXID it holds and the TXID wanted, with the replica's last upload error.

The socket is -socket PATH, else the socket: section of the config file
(socket: enabled: true and path:), else ` + config.DefaultSocketPath + `.`

const listDescription = `
Lists the databases the running walship replicate replicates, with each
one's state (starting, waiting, replicating, stopped), the newest TXID
captured, the newest TXID every replica holds, and its errors. The socket is
found as for walship sync.`

const infoDescription = `
Without DB_PATH, shows the running walship replicate: its version, PID,
uptime and number of databases. With DB_PATH, shows that database's state as
walship status does: the newest TXID captured and, for each replica, the
TXID it holds, its lag, its newest snapshot and its last error. The socket
is found as for walship sync.`

// socketFlags are the flags that find the control socket.
type socketFlags struct {
	cf      *configFlags
	socket  *string
	timeout *secondsOrDuration
}

func addSocketFlags(flags *flag.FlagSet, timeout time.Duration) *socketFlags {
	s := &socketFlags{cf: addConfigFlags(flags), timeout: &secondsOrDuration{timeout}}
	s.socket = flags.String("socket", "", "the control socket's `PATH` (default: the config file's socket.path)")
	flags.Var(s.timeout, "timeout", "give up after this `duration` (10s, 500ms; a bare number is seconds, as in Litestream)")
	return s
}

// client returns a client of the socket that -socket, else the config
// file, names.
func (s *socketFlags) client() (*control.Client, error) {
	if *s.socket != "" {
		if s.cf.explicit() {
			return nil, usagef("-socket and -config cannot be combined: -socket names the socket, -config the file that names it")
		}
		return control.NewClient(*s.socket), nil
	}
	cfg, err := s.cf.load(true)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return control.NewClient(config.DefaultSocketPath), nil
	}
	if !cfg.Socket.Enabled {
		return nil, fmt.Errorf("the config file %s does not enable the control socket: add \"socket:\" with \"enabled: true\" (and a path:) to it and restart walship replicate, or name the socket with -socket", *s.cf.path)
	}
	return control.NewClient(cfg.Socket.SocketPath()), nil
}

// secondsOrDuration is a -timeout: a Go duration, or a whole number of
// seconds as Litestream's -timeout takes.
type secondsOrDuration struct{ d time.Duration }

func (s *secondsOrDuration) String() string { return s.d.String() }

func (s *secondsOrDuration) Set(v string) error {
	if n, err := strconv.Atoi(v); err == nil {
		s.d = time.Duration(n) * time.Second
	} else if s.d, err = time.ParseDuration(v); err != nil {
		return fmt.Errorf("invalid duration %q (use 10s, 500ms, or a number of seconds)", v)
	}
	if s.d <= 0 {
		return fmt.Errorf("must be greater than 0 (got %s)", v)
	}
	return nil
}

// answerMargin is how much longer than the timeout the client waits: the
// process, which times the wait, answers first, naming the replica behind.
const answerMargin = 5 * time.Second

func runSync(ctx context.Context, e *env, args []string) error {
	flags := newFlagSet(e, "sync", "[flags] DB_PATH", syncDescription)
	sf := addSocketFlags(flags, control.DefaultSyncWaitTimeout)
	wait := flags.Bool("wait", false, "return only once every replica holds the captured TXID")
	jsonOut := flags.Bool("json", false, "print the answer as JSON")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	e.jsonErrors = *jsonOut
	if len(pos) != 1 {
		return usagef("sync takes one DB_PATH (got %d arguments)", len(pos))
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, sf.timeout.d+answerMargin)
	defer cancel()
	begun := time.Now()
	resp, err := c.Sync(ctx, pos[0], *wait, sf.timeout.d)
	if err != nil {
		if *wait {
			return fmt.Errorf("sync -wait: %w", err)
		}
		return fmt.Errorf("sync: %w", err)
	}
	if *jsonOut {
		return e.printJSON(resp)
	}
	took := formatDuration(time.Since(begun))
	switch {
	case *wait:
		var held []string
		for _, r := range resp.Replicas {
			held = append(held, fmt.Sprintf("%s %s", r.Name, ltx.TXID(r.TXID)))
		}
		fmt.Fprintf(e.stdout, "%s: TXID %s is on every replica (%s), in %s\n", resp.Path, ltx.TXID(resp.TXID), strings.Join(held, ", "), took)
	case resp.Status == "no_change":
		fmt.Fprintf(e.stdout, "%s: nothing new to capture; TXID %s, every replica holds %s\n", resp.Path, ltx.TXID(resp.TXID), ltx.TXID(resp.ReplicatedTXID))
	default:
		fmt.Fprintf(e.stdout, "%s: captured TXID %s in %s; the replicas receive it in the background (-wait waits for them)\n", resp.Path, ltx.TXID(resp.TXID), took)
	}
	return nil
}

func runList(ctx context.Context, e *env, args []string) error {
	flags := newFlagSet(e, "list", "[flags]", listDescription)
	sf := addSocketFlags(flags, statusTimeout)
	jsonOut := flags.Bool("json", false, "print the answer as JSON")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	e.jsonErrors = *jsonOut
	if len(pos) != 0 {
		return usagef("list takes no argument (got %d)", len(pos))
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, sf.timeout.d)
	defer cancel()
	list, err := c.List(ctx)
	if err != nil {
		return err
	}
	if *jsonOut {
		return e.printJSON(list)
	}
	if len(list.Databases) == 0 {
		fmt.Fprintln(e.stdout, "the running walship replicates no database")
	}
	for _, db := range list.Databases {
		fmt.Fprintf(e.stdout, "%s [%s] TXID %s, on every replica %s", db.Path, db.Status, ltx.TXID(db.TXID), ltx.TXID(db.ReplicatedTXID))
		if db.Failing > 0 {
			fmt.Fprintf(e.stdout, ", %d replica(s) failing (walship info %s says why)", db.Failing, db.Path)
		}
		fmt.Fprintln(e.stdout)
		if db.Error != "" {
			fmt.Fprintf(e.stdout, "  cannot be synced: %s\n", db.Error)
		}
	}
	return nil
}

func runInfo(ctx context.Context, e *env, args []string) error {
	flags := newFlagSet(e, "info", "[flags] [DB_PATH]", infoDescription)
	sf := addSocketFlags(flags, statusTimeout)
	jsonOut := flags.Bool("json", false, "print the answer as JSON")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	e.jsonErrors = *jsonOut
	if len(pos) > 1 {
		return usagef("info takes at most one DB_PATH (got %d arguments)", len(pos))
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, sf.timeout.d)
	defer cancel()
	if len(pos) == 1 {
		rep, err := c.Status(ctx, pos[0])
		if err != nil {
			return err
		}
		return printStatus(e, *jsonOut, rep, "the running walship")
	}
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	if *jsonOut {
		return e.printJSON(info)
	}
	fmt.Fprintf(e.stdout, "walship %s\n  PID:        %d\n  Uptime:     %s\n  Started at: %s\n  Databases:  %d\n  Socket:     %s\n",
		info.Version, info.PID, time.Duration(info.UptimeSeconds)*time.Second, info.StartedAt.Format(time.RFC3339), info.DatabaseCount, info.Socket)
	return nil
}

// serveControl creates the control socket of replicate, if one is
// configured (nil otherwise): path and mode from the config file's socket:
// section, or -socket.
func serveControl(log *slog.Logger, store *walship.Store, sock config.Socket) (*control.Server, error) {
	if !sock.Enabled {
		return nil, nil
	}
	return control.Listen(sock.SocketPath(), sock.Mode(), control.FromStore(store), control.Options{Version: Version, Logger: log})
}
