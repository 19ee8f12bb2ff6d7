package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/walship/walship"
	"github.com/walship/walship/internal/monitor"
)

// closeTimeout bounds how long Close waits for requests in flight.
const closeTimeout = 5 * time.Second

// Options configure a Server.
type Options struct {
	// Version is what GET /info reports.
	Version string
	Logger  *slog.Logger
}

// Server serves the control socket.
type Server struct {
	path    string
	fi      fs.FileInfo // the socket file, so that Close removes only this one
	proc    Process
	opts    Options
	started time.Time
	http    *http.Server
	l       net.Listener
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
}

// Listen creates the control socket at path with mode (see listen for a
// socket left behind) and serves it until Close.
func Listen(path string, mode fs.FileMode, proc Process, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l, fi, err := listen(path, mode, opts.Logger)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{path: path, fi: fi, proc: proc, opts: opts, started: time.Now(), l: l, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	s.http = &http.Server{
		Handler: s.Handler(),
		// A request in flight ends when the server closes: a sync -wait
		// must not hold the process's exit.
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Logger.Error("the control socket stopped serving", "socket", path, "error", err)
		}
	}()
	opts.Logger.Info("control socket listening", "socket", path, "mode", fmt.Sprintf("%#o", mode.Perm()))
	return s, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops serving, ends the requests in flight, and removes the socket
// file, unless another process replaced it.
func (s *Server) Close() error {
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	err := s.http.Shutdown(ctx)
	<-s.done
	return errors.Join(err, removeIfOurs(s.path, s.fi))
}

// Handler returns the socket's HTTP handler (tests serve it elsewhere).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sync", s.handleSync)
	mux.HandleFunc("GET /list", s.handleList)
	mux.HandleFunc("GET /info", s.handleInfo)
	mux.HandleFunc("GET /status", s.handleStatus)
	mux.HandleFunc("POST /register", s.handleRegister)
	mux.HandleFunc("POST /unregister", s.handleUnregister)
	mux.HandleFunc("POST /stop", s.handleStop)
	mux.HandleFunc("POST /start", s.handleStart)
	return mux
}

// find returns the database at path, made absolute as the process sees
// it, or an error for the answer.
func (s *Server) find(path string) (Database, error) {
	if path == "" {
		return nil, badRequest("path required: the database's path, as in the config file")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, badRequest(fmt.Sprintf("invalid path %q: %v", path, err))
	}
	if db := s.proc.DB(abs); db != nil {
		return db, nil
	}
	// The same file by another name (a symbolic link on either side).
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		if db := s.proc.DB(real); db != nil {
			return db, nil
		}
	}
	return nil, fmt.Errorf("%s: %w; walship list shows the databases it replicates", abs, ErrNotFound)
}

func (s *Server) handleSync(w http.ResponseWriter, r *http.Request) {
	var req SyncRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, badRequest("invalid request body: "+err.Error()))
		return
	}
	db, err := s.find(req.Path)
	if err != nil {
		writeError(w, err)
		return
	}
	timeout := time.Duration(req.Timeout * float64(time.Second))
	if req.Wait && timeout <= 0 {
		timeout = DefaultSyncWaitTimeout
	}
	ctx := r.Context()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	before := db.Pos().TXID
	sync := db.Sync
	if req.Wait {
		sync = db.SyncWait
	} else if p := db.Phase(); p != walship.PhaseReplicating {
		writeError(w, fmt.Errorf("database %s: %w (it is %s); try again once walship replicates it", db.Path(), walship.ErrNotReplicating, p))
		return
	}
	pos, err := sync(ctx)
	if err != nil {
		if s.ctx.Err() != nil {
			err = fmt.Errorf("walship is stopping: %w", err)
		}
		writeError(w, err)
		return
	}
	resp := SyncResponse{Status: "synced_local", Path: db.Path(), TXID: uint64(pos.TXID), ReplicatedTXID: uint64(pos.TXID)}
	if req.Wait {
		resp.Status = "synced"
	}
	if pos.TXID <= before {
		resp.Status = "no_change"
	}
	for _, r := range db.Replicas() {
		txid := uint64(r.Pos().TXID)
		resp.Replicas = append(resp.Replicas, ReplicaPos{Name: r.Name, TXID: txid})
		resp.ReplicatedTXID = min(resp.ReplicatedTXID, txid)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	resp := ListResponse{Databases: []DatabaseSummary{}}
	for _, st := range s.proc.Status(r.Context(), time.Now()) {
		resp.Databases = append(resp.Databases, summarize(st))
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, InfoResponse{
		Version:       s.opts.Version,
		PID:           os.Getpid(),
		UptimeSeconds: int64(time.Since(s.started).Seconds()),
		StartedAt:     s.started.UTC(),
		DatabaseCount: len(s.proc.Status(r.Context(), time.Now())),
		Socket:        s.path,
	})
}

// handleStatus serves the document of the metrics listener's /status,
// for every database or, with ?path=, one.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	rep := monitor.Report{Source: "process", Time: now.UTC()}
	if path := r.URL.Query().Get("path"); path != "" {
		db, err := s.find(path)
		if err != nil {
			writeError(w, err)
			return
		}
		rep.DBs = []walship.DBStatus{db.Status(r.Context(), now)}
	} else {
		rep.DBs = s.proc.Status(r.Context(), now)
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req RegisterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, badRequest("invalid request body: "+err.Error()))
		return
	}
	if req.Path == "" {
		writeError(w, badRequest("path required: the path of the database to replicate"))
		return
	}
	if req.ReplicaURL == "" {
		writeError(w, badRequest("replica_url required: where to replicate the database, e.g. s3://bucket/app or file:///backups/app"))
		return
	}
	abs, err := filepath.Abs(req.Path)
	if err != nil {
		writeError(w, badRequest(fmt.Sprintf("invalid path %q: %v", req.Path, err)))
		return
	}
	req.Path = abs
	// The same file by another name; one at this very path is the
	// store's to refuse, or to replace if it stopped on a failure.
	if db, err := s.find(abs); err == nil && db.Path() != abs {
		writeError(w, fmt.Errorf("%s is %s: %w (walship list shows it); walship unregister it first", abs, db.Path(), walship.ErrDuplicate))
		return
	}
	if err := s.proc.Register(r.Context(), req); err != nil {
		if errors.Is(err, walship.ErrDuplicate) {
			err = fmt.Errorf("%s: %w (walship list shows it); walship unregister it first, or walship start it if it is stopped", abs, walship.ErrDuplicate)
		}
		writeError(w, err)
		return
	}
	s.opts.Logger.Info("database registered through the control socket", "db", abs)
	resp := RegisterResponse{Status: "registered", Path: abs}
	if db := s.awaitReady(r.Context(), abs); db != nil {
		resp.Phase = db.Phase().String()
	}
	writeJSON(w, http.StatusOK, resp)
}

// awaitReady waits, up to DefaultStopTimeout, until the database at path
// that was just added or resumed replicates, waits for its file, or
// stopped, and returns it: a sync -wait sent next is then served, not
// refused as not replicating yet.
func (s *Server) awaitReady(ctx context.Context, path string) Database {
	ctx, cancel := context.WithTimeout(ctx, DefaultStopTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		db := s.proc.DB(path)
		if db == nil || db.Ready() || db.Phase() == walship.PhaseStopped {
			return db
		}
		select {
		case <-ctx.Done():
			return db
		case <-tick.C:
		}
	}
}

func (s *Server) handleUnregister(w http.ResponseWriter, r *http.Request) {
	s.changeState(w, r, func(ctx context.Context, db Database) (string, error) {
		return "unregistered", s.proc.Unregister(ctx, db.Path())
	})
}

func (s *Server) handleStop(w http.ResponseWriter, r *http.Request) {
	s.changeState(w, r, func(ctx context.Context, db Database) (string, error) {
		err := s.proc.Stop(ctx, db.Path())
		if errors.Is(err, walship.ErrPaused) {
			return "already_stopped", nil
		}
		return "stopped", err
	})
}

func (s *Server) handleStart(w http.ResponseWriter, r *http.Request) {
	s.changeState(w, r, func(ctx context.Context, db Database) (string, error) {
		err := s.proc.Start(ctx, db.Path())
		if errors.Is(err, walship.ErrReplicating) {
			return "already_running", nil
		}
		return "started", err
	})
}

// changeState serves a POST {"path", "timeout"} that change does to the
// database at path, answering the database's TXIDs once it returns.
func (s *Server) changeState(w http.ResponseWriter, r *http.Request, change func(context.Context, Database) (string, error)) {
	var req PathRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, badRequest("invalid request body: "+err.Error()))
		return
	}
	db, err := s.find(req.Path)
	if err != nil {
		writeError(w, err)
		return
	}
	timeout := time.Duration(req.Timeout * float64(time.Second))
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	status, err := change(ctx, db)
	if err != nil {
		if s.ctx.Err() != nil {
			err = fmt.Errorf("walship is stopping: %w", err)
		}
		writeError(w, err)
		return
	}
	s.opts.Logger.Info("database "+status+" through the control socket", "db", db.Path())
	// Start runs the database anew: read the one that runs now.
	if status == "started" {
		if now := s.awaitReady(ctx, db.Path()); now != nil {
			db = now
		}
	}
	resp := StateResponse{Status: status, Path: db.Path(), TXID: uint64(db.Pos().TXID), Phase: db.Phase().String()}
	if status == "unregistered" {
		resp.Phase = ""
	}
	resp.ReplicatedTXID = resp.TXID
	for _, r := range db.Replicas() {
		resp.ReplicatedTXID = min(resp.ReplicatedTXID, uint64(r.Pos().TXID))
	}
	writeJSON(w, http.StatusOK, resp)
}

// badRequest is a mistake in the request.
type badRequest string

func (b badRequest) Error() string { return string(b) }

// writeError answers err with the status that says what it is, and the
// replicas behind as details of a sync that timed out.
func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var bad badRequest
	var behind *walship.BehindError
	resp := ErrorResponse{Error: err.Error()}
	switch {
	case errors.As(err, &bad):
		status = http.StatusBadRequest
	case errors.Is(err, ErrNotFound), errors.Is(err, walship.ErrUnknownDB):
		status = http.StatusNotFound
	case errors.Is(err, walship.ErrDuplicate):
		status = http.StatusConflict
	case errors.Is(err, walship.ErrNotRunning):
		status = http.StatusServiceUnavailable
	case errors.Is(err, walship.ErrNotReplicating):
		status = http.StatusConflict
	case errors.As(err, &behind):
		status = http.StatusGatewayTimeout
		if errors.Is(err, walship.ErrReplicaStopped) {
			status = http.StatusConflict
		}
		resp.Details = behind
	}
	writeJSON(w, status, resp)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
