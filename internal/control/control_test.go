package control

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walship/walship"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeDB stands in for a walship.DB in tests of the translation alone;
// the engine's barrier is tested in the root package, the whole path in
// internal/e2e.
type fakeDB struct {
	path  string
	pos   ltx.TXID
	phase walship.Phase
	err   error // SyncWait's
}

func (d *fakeDB) Path() string                 { return d.path }
func (d *fakeDB) Pos() ltx.Pos                 { return ltx.Pos{TXID: d.pos} }
func (d *fakeDB) Phase() walship.Phase         { return d.phase }
func (d *fakeDB) Ready() bool                  { return d.phase != walship.PhaseStarting }
func (d *fakeDB) Replicas() []*walship.Replica { return nil }
func (d *fakeDB) Status(context.Context, time.Time) walship.DBStatus {
	return walship.DBStatus{Path: d.path, Phase: d.phase.String(), TXID: d.pos,
		Replicas: []walship.ReplicaStatus{{Name: "s3", TXID: d.pos - 1, Error: "connection refused"}}}
}
func (d *fakeDB) Sync(context.Context) (ltx.Pos, error) { d.pos++; return d.Pos(), nil }
func (d *fakeDB) SyncWait(ctx context.Context) (ltx.Pos, error) {
	d.pos++
	return d.Pos(), d.err
}

type fakeProcess struct {
	dbs   []*fakeDB
	calls []string
	errs  map[string]error
}

func (p *fakeProcess) Status(ctx context.Context, now time.Time) []walship.DBStatus {
	var out []walship.DBStatus
	for _, db := range p.dbs {
		out = append(out, db.Status(ctx, now))
	}
	return out
}

func (p *fakeProcess) DB(path string) Database {
	for _, db := range p.dbs {
		if db.path == path {
			return db
		}
	}
	return nil
}

// Register, Unregister, Stop and Start record their calls and answer
// err, or, by path, the error of that path.
func (p *fakeProcess) Register(_ context.Context, req RegisterRequest) error {
	p.calls = append(p.calls, "register "+req.Path+" "+req.ReplicaURL)
	return p.errs[req.Path]
}

func (p *fakeProcess) Unregister(_ context.Context, path string) error {
	p.calls = append(p.calls, "unregister "+path)
	return p.errs[path]
}

func (p *fakeProcess) Stop(_ context.Context, path string) error {
	p.calls = append(p.calls, "stop "+path)
	return p.errs[path]
}

func (p *fakeProcess) Start(_ context.Context, path string) error {
	p.calls = append(p.calls, "start "+path)
	return p.errs[path]
}

func listenT(t *testing.T, path string, proc Process) *Server {
	t.Helper()
	s, err := Listen(path, 0o600, proc, Options{Version: "test", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The socket is created with mode 0600 whatever the umask, answers, and
// is removed when the server closes.
func TestListenModeAndRemove(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "ws.sock")
	s := listenT(t, path, &fakeProcess{})
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	info, err := NewClient(path).Info(context.Background())
	if err != nil || info.PID != os.Getpid() || info.Version != "test" {
		t.Fatalf("info: %+v, %v", info, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want the socket alone (the private directory it was bound in is gone)", len(entries))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket still there after Close: %v", err)
	}
	if _, err := NewClient(path).Info(context.Background()); err == nil || !strings.Contains(err.Error(), "is walship replicate running") {
		t.Errorf("client of a closed socket: %v", err)
	}
}

// TestListenNeverInPlace: a socket path that fits a Unix socket while the
// private directory it is first bound in does not is refused, naming the
// limit, rather than bound in place (open to anyone the umask lets in
// until its mode is set); nothing is left behind.
func TestListenNeverInPlace(t *testing.T) {
	base := t.TempDir()
	if len(base) > 90 {
		t.Fatalf("the test directory %s is too long for this test", base)
	}
	dir := filepath.Join(base, strings.Repeat("d", 100-len(base)-1))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "x.sock") // 107 bytes: fits; dir/.wsN/s does not
	if len(path) != maxSocketPath {
		t.Fatalf("path of %d bytes", len(path))
	}
	l, _, err := listen(path, 0o600, quiet())
	if err == nil {
		l.Close()
		t.Fatal("a socket was bound at a path too long for its private directory")
	}
	if !strings.Contains(err.Error(), "choose a socket.path in a directory whose path is at most") {
		t.Fatalf("the refusal does not say what to do: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the refused listen left %d entries in %s", len(entries), dir)
	}
}

// A socket left by a killed process (nobody listens) does not stop the
// next start; a live one does, with ErrInUse, and stays served; a file
// that is not a socket is never removed.
func TestStaleLiveAndForeignSockets(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // as a SIGKILL leaves it
	if _, err := os.Lstat(stale); err != nil {
		t.Fatal(err)
	}
	listenT(t, stale, &fakeProcess{})
	if _, err := NewClient(stale).Info(context.Background()); err != nil {
		t.Fatalf("after replacing a stale socket: %v", err)
	}

	_, err = Listen(stale, 0o600, &fakeProcess{}, Options{Logger: quiet()})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), stale) {
		t.Fatalf("second Listen on a live socket: %v, want ErrInUse naming it", err)
	}
	if _, err := NewClient(stale).Info(context.Background()); err != nil {
		t.Fatalf("the first server, after the second was refused: %v", err)
	}

	foreign := filepath.Join(dir, "file")
	if err := os.WriteFile(foreign, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(foreign, 0o600, &fakeProcess{}, Options{Logger: quiet()}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen on a regular file: %v", err)
	}
	if data, _ := os.ReadFile(foreign); string(data) != "keep" {
		t.Fatal("the regular file was changed")
	}
}

// A server closing does not remove a socket another process put at its
// path meanwhile.
func TestCloseKeepsAnotherSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ws.sock")
	s := listenT(t, path, &fakeProcess{})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	other := listenT(t, path, &fakeProcess{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewClient(other.Path()).Info(context.Background()); err != nil {
		t.Fatalf("the other server's socket, after the first closed: %v", err)
	}
}

// The endpoints translate the engine's answers and errors.
func TestEndpoints(t *testing.T) {
	dir := t.TempDir()
	ok := &fakeDB{path: filepath.Join(dir, "a.db"), pos: 5, phase: walship.PhaseReplicating}
	behind := &fakeDB{path: filepath.Join(dir, "b.db"), pos: 7, phase: walship.PhaseReplicating}
	behind.err = &walship.BehindError{DB: behind.path, Want: 8, Behind: []walship.ReplicaBehind{{Name: "s3", TXID: 7, Error: "connection refused"}}, Err: context.DeadlineExceeded}
	waiting := &fakeDB{path: filepath.Join(dir, "c.db"), phase: walship.PhaseWaiting}
	path := filepath.Join(dir, "ws.sock")
	listenT(t, path, &fakeProcess{dbs: []*fakeDB{ok, behind, waiting}})
	c := NewClient(path)
	ctx := context.Background()

	resp, err := c.Sync(ctx, ok.path, true, time.Second)
	if err != nil || resp.Status != "synced" || resp.TXID != 6 || resp.Path != ok.path {
		t.Fatalf("sync -wait: %+v, %v", resp, err)
	}
	if resp, err = c.Sync(ctx, ok.path, false, 0); err != nil || resp.Status != "synced_local" || resp.TXID != 7 {
		t.Fatalf("sync: %+v, %v", resp, err)
	}

	var e *Error
	_, err = c.Sync(ctx, behind.path, true, time.Second)
	if !errors.As(err, &e) || e.Status != http.StatusGatewayTimeout || !strings.Contains(e.Message, `replica "s3" holds TXID 0000000000000007, wanted 0000000000000008`) || !strings.Contains(string(e.Details), `"want_txid"`) {
		t.Fatalf("sync -wait behind: %v (%+v)", err, e)
	}
	_, err = c.Sync(ctx, waiting.path, false, 0)
	if !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Message, "waiting") {
		t.Fatalf("sync of a database not replicating: %v", err)
	}
	_, err = c.Sync(ctx, filepath.Join(dir, "nope.db"), false, 0)
	if !errors.As(err, &e) || e.Status != http.StatusNotFound || !strings.Contains(e.Message, "nope.db") {
		t.Fatalf("sync of an unknown database: %v", err)
	}

	// The same file through a symbolic link is found.
	link := filepath.Join(dir, "link.db")
	if err := os.WriteFile(ok.path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ok.path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sync(ctx, link, false, 0); err != nil {
		t.Fatalf("sync through a symbolic link: %v", err)
	}

	list, err := c.List(ctx)
	if err != nil || len(list.Databases) != 3 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if d := list.Databases[0]; d.Path != ok.path || d.Status != "replicating" || d.TXID != 8 || d.ReplicatedTXID != 7 || d.Failing != 1 {
		t.Errorf("list entry: %+v", d)
	}
	rep, err := c.Status(ctx, behind.path)
	if err != nil || len(rep.DBs) != 1 || rep.DBs[0].Path != behind.path || rep.Source != "process" {
		t.Fatalf("status of one database: %+v, %v", rep, err)
	}
	if rep, err = c.Status(ctx, ""); err != nil || len(rep.DBs) != 3 {
		t.Fatalf("status: %+v, %v", rep, err)
	}
	if info, err := c.Info(ctx); err != nil || info.DatabaseCount != 3 || info.Socket != path {
		t.Fatalf("info: %+v, %v", info, err)
	}
}

// FromStore finds a database by its configured path, and by the file a
// configured symbolic link points to.
func TestFromStore(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.db")
	if err := os.WriteFile(real, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	db, err := walship.NewDB(link, walship.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	p := FromStore(&walship.Store{DBs: []*walship.DB{db}})
	if p.DB(link) == nil || p.DB(real) == nil {
		t.Fatalf("lookup by the link %v, by its target %v", p.DB(link), p.DB(real))
	}
	if got := p.DB(filepath.Join(dir, "other.db")); got != nil {
		t.Fatalf("another path found %v", got)
	}
}
