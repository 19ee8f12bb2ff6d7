package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/control"
	"github.com/walship/walship/internal/monitor"
)

const statusDescription = `
Shows, for each database and replica, the newest TXID captured and the
newest the replica holds, the replica's lag (the age of the oldest captured
transaction it does not hold yet), its newest snapshot, the staging
directory's size and the replica's last error.

It asks the running walship replicate for its state: on its control socket
(-socket, else the config file's socket: section when enabled), else at
/status on its listener (-addr, else the config file's addr:). When no
process answers (or none listens), it reads the replicas of the config file instead: their
newest TXID and snapshot, without the captured TXID or the lag, which only
the running process knows. The first line says which.`

// statusTimeout bounds the request to the running process: one that does
// not answer this fast is as good as absent.
const statusTimeout = 5 * time.Second

func runStatus(ctx context.Context, e *env, args []string) error {
	flags := newFlagSet(e, "status", "[flags]", statusDescription)
	cf := addConfigFlags(flags)
	addr := flags.String("addr", "", "ask the walship replicate listening on this `HOST:PORT` (default: the config file's addr:)")
	socket := flags.String("socket", "", "ask the walship replicate serving this control socket `PATH` (default: the config file's socket.path, when enabled)")
	jsonOut := flags.Bool("json", false, "print the state as JSON (the document of /status)")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	e.jsonErrors = *jsonOut
	if len(pos) != 0 {
		return usagef("status takes no argument (got %d)", len(pos))
	}
	if *addr != "" && cf.explicit() {
		return usagef("-addr and -config cannot be combined: -addr asks a running process, -config reads its file")
	}
	if *socket != "" && (*addr != "" || cf.explicit()) {
		return usagef("-socket cannot be combined with -addr or -config: each names where to ask")
	}
	if *socket != "" {
		rep, err := askSocket(ctx, *socket)
		if err != nil {
			return err
		}
		return printStatus(e, *jsonOut, rep, "the running walship on "+*socket)
	}
	cfg, err := cf.load(*addr != "")
	if err != nil {
		return err
	}
	if *addr == "" && cfg != nil && cfg.Socket.Enabled {
		// The socket first: it is there whether or not addr: is.
		path := cfg.Socket.SocketPath()
		if rep, err := askSocket(ctx, path); err == nil {
			return printStatus(e, *jsonOut, rep, "the running walship on "+path)
		}
	}
	if *addr == "" && cfg != nil {
		*addr = cfg.Addr
	}
	var note string
	if *addr != "" {
		rep, err := fetchStatus(ctx, *addr)
		if err == nil {
			return printStatus(e, *jsonOut, rep, "the running walship at "+*addr)
		}
		if cfg == nil {
			return fmt.Errorf("no walship answered at %s (%v); is walship replicate running with addr: %s? To read the replicas instead, give the config file with -config", *addr, err, *addr)
		}
		note = fmt.Sprintf("no walship answered at %s (%v)", *addr, err)
	} else if cfg != nil {
		note = "the config file sets no addr:, so no running walship can be asked"
	}
	if cfg == nil {
		return fmt.Errorf("no config file at %s and no -addr: give the config file with -config, or the address of a running walship with -addr", *cf.path)
	}
	store, err := walship.FromConfig(ctx, cfg, *cf.path, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer store.Close()
	rep := monitor.Report{Source: "replicas", Time: time.Now().UTC()}
	// The databases of a directory are those in it now: each one's replica
	// is read as a listed database's.
	for _, d := range store.Dirs {
		paths, err := d.Databases()
		if err != nil {
			rep.DBs = append(rep.DBs, walship.DBStatus{Path: d.Path, Error: fmt.Sprintf("cannot list the databases of the directory: %v", err)})
		}
		for _, p := range paths {
			db, err := d.New(ctx, p)
			if err != nil {
				rep.DBs = append(rep.DBs, walship.DBStatus{Path: p, Error: err.Error()})
				continue
			}
			store.DBs = append(store.DBs, db) // Close releases its clients
		}
	}
	for _, db := range store.DBs {
		rep.DBs = append(rep.DBs, db.StatusFromReplicas(ctx))
	}
	return printStatus(e, *jsonOut, rep, "the replicas ("+note+"); the captured TXID and the lag are known only to a running walship")
}

// askSocket asks the process serving the control socket at path for its
// state.
func askSocket(ctx context.Context, path string) (monitor.Report, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	return control.NewClient(path).Status(ctx, "")
}

// fetchStatus asks the process listening on addr for its state.
func fetchStatus(ctx context.Context, addr string) (monitor.Report, error) {
	var rep monitor.Report
	hostport, err := monitor.Address(addr)
	if err != nil {
		return rep, err
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostport+"/status", nil)
	if err != nil {
		return rep, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("GET /status: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return rep, fmt.Errorf("GET /status: %w", err)
	}
	return rep, nil
}

// phaseNotes say what a database that is not replicating is doing.
var phaseNotes = map[string]string{
	"starting":           "starting: opening the database and reading its replicas",
	"waiting":            "waiting: for the database file to be created, or for a problem opening it to clear",
	"stopped":            "stopped: its replication ended (the log says why); the other databases go on",
	walship.StatePaused:  "paused: its replication waits to be resumed; what the application commits meanwhile is captured then",
	walship.StateStandby: "standing by: its path is a verified copy of the replica, promoted when the primary's lease expires",
}

// printStatus prints rep, read from source.
func printStatus(e *env, asJSON bool, rep monitor.Report, source string) error {
	if asJSON {
		return e.printJSON(rep)
	}
	fmt.Fprintf(e.stdout, "state read from %s, at %s\n", source, rep.Time.Format(time.RFC3339))
	live := rep.Source == "process"
	for _, db := range rep.DBs {
		fmt.Fprintf(e.stdout, "\n%s\n", db.Path)
		// A standby neither captures nor uploads: its copy and the
		// lease (printLease) say where it is.
		standby := live && db.Phase == walship.StateStandby
		switch {
		case standby:
		case live:
			fmt.Fprintf(e.stdout, "  captured TXID %s, WAL %s, staging %s\n", db.TXID, formatBytes(db.WALBytes), formatBytes(db.StagingBytes))
		default:
			fmt.Fprintf(e.stdout, "  WAL %s, staging %s\n", formatBytes(db.WALBytes), formatBytes(db.StagingBytes))
		}
		if say, ok := phaseNotes[db.Phase]; ok && live {
			fmt.Fprintf(e.stdout, "  %s\n", say)
		}
		if db.Lease != nil && live {
			printLease(e, db.Lease)
		}
		switch {
		case db.Error != "" && standby:
			fmt.Fprintf(e.stdout, "  cannot keep up with the replica since %s: %s\n", db.FailingSince.UTC().Format(time.RFC3339), db.Error)
		case db.Error != "":
			fmt.Fprintf(e.stdout, "  cannot be synced since %s: %s\n", db.FailingSince.UTC().Format(time.RFC3339), db.Error)
		}
		for _, r := range db.Replicas {
			if standby {
				break // its replica is the primary's to report
			}
			fmt.Fprintf(e.stdout, "  replica %s: TXID %s", r.Name, r.TXID)
			if live {
				fmt.Fprintf(e.stdout, ", lag %s", formatDuration(r.Lag))
			}
			if r.LastSnapshot.IsZero() {
				fmt.Fprintf(e.stdout, ", no snapshot")
			} else {
				fmt.Fprintf(e.stdout, ", last snapshot %s", r.LastSnapshot.UTC().Format(time.RFC3339))
			}
			fmt.Fprintln(e.stdout)
			if r.Stopped != "" {
				fmt.Fprintf(e.stdout, "    stopped: %s\n", r.Stopped)
			}
			if r.Error != "" {
				fmt.Fprintf(e.stdout, "    last error: %s\n", r.Error)
			}
		}
	}
	return nil
}

// printLease prints a running walship's lease on a database's primary
// role (lease-ttl): a standby's copy and the holder it watches, or this
// node's hold and promotion.
func printLease(e *env, l *walship.LeaseStatus) {
	switch {
	case l.Held:
		fmt.Fprintf(e.stdout, "  lease (TTL %s): held by this node\n", formatDuration(l.TTL))
	case l.Holder != "":
		fmt.Fprintf(e.stdout, "  lease (TTL %s): held by %s\n", formatDuration(l.TTL), l.Holder)
	default:
		fmt.Fprintf(e.stdout, "  lease (TTL %s): not held by this node\n", formatDuration(l.TTL))
	}
	if s := l.Standby; s != nil {
		fmt.Fprintf(e.stdout, "  standby copy at TXID %s, the replica's newest %s, lag %s\n", s.TXID, s.Replica, formatDuration(s.Lag))
	}
	if p := l.Promotion; p != nil {
		fmt.Fprintf(e.stdout, "  promoted at %s from TXID %s, %s after the lease expired", p.At.UTC().Format(time.RFC3339), p.TXID, formatDuration(p.Promotion))
		if p.FirstWrite.IsZero() {
			fmt.Fprintf(e.stdout, "; no write yet")
		} else {
			fmt.Fprintf(e.stdout, "; first write %s after it", formatDuration(p.Failover))
		}
		fmt.Fprintln(e.stdout)
		switch {
		case p.Released:
			fmt.Fprintf(e.stdout, "  lost: nothing (the previous primary released the lease with every commit in the replica)\n")
		case p.Unshipped > 0:
			fmt.Fprintf(e.stdout, "  lost: at least %d TXIDs the previous primary had captured and never shipped, and what it committed after its last lease renewal\n", p.Unshipped)
		default:
			fmt.Fprintf(e.stdout, "  lost: what the previous primary committed after its last lease renewal and did not ship (after a crash, at most its sync interval, %s)\n", formatDuration(p.LossBound))
		}
		if p.Previous != "" {
			fmt.Fprintf(e.stdout, "  previous holder %s\n", p.Previous)
		}
	}
}
