package sftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/storagetest"
)

// TestLayout checks what lands on the server: <path>/ltx/<level>/<min>-<max>.ltx
// with the LTX timestamp as its modification time, and no temp file left.
func TestLayout(t *testing.T) {
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	c := openTest(t, srv, dir, nil)
	ctx := context.Background()

	at := time.Date(2025, 11, 12, 13, 14, 15, 678_000_000, time.UTC)
	files := map[int][2]ltx.TXID{0: {5, 7}, 3: {1, 0x1f}, storage.SnapshotLevel: {1, 0x100}}
	for level, r := range files {
		b := storagetest.File(t, r[0], r[1], 2, uint64(level))
		info, err := c.WriteLTXFile(ctx, level, r[0], r[1], bytes.NewReader(b), at)
		if err != nil {
			t.Fatal(err)
		}
		if !info.CreatedAt.Equal(at.Truncate(time.Second)) {
			t.Fatalf("write returned created-at %s; want %s", info.CreatedAt, at.Truncate(time.Second))
		}
		p := filepath.Join(dir, "ltx", fmt.Sprint(level), fmt.Sprintf("%016x-%016x.ltx", uint64(r[0]), uint64(r[1])))
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("level %d: the file is not where Litestream looks: %v", level, err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("%s holds %d bytes that differ from the %d written", p, len(got), len(b))
		}
		fi, _ := os.Stat(p)
		if !fi.ModTime().Equal(at.Truncate(time.Second)) {
			t.Fatalf("%s has modification time %s; want the LTX timestamp %s", p, fi.ModTime().UTC(), at.Truncate(time.Second))
		}
		entries, _ := os.ReadDir(filepath.Dir(p))
		if len(entries) != 1 {
			t.Fatalf("%s holds %d entries; want only the LTX file (no temp file)", filepath.Dir(p), len(entries))
		}
	}

	// A file written by another tool (Litestream) is listed with its mtime.
	other := filepath.Join(dir, "ltx", "0", "0000000000000008-0000000000000009.ltx")
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(other, when, when)
	os.WriteFile(filepath.Join(dir, "ltx", "0", "notes.txt"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, "ltx", "0", "0000000000000010-0000000000000010.ltx"), 0o755)
	list, err := c.LTXFiles(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[1].MinTXID != 8 || !list[1].CreatedAt.Equal(when) || list[1].Size != 1 {
		t.Fatalf("level 0 lists %+v; want 5-7 and 8-9 (created %s), not the text file or the directory", list, when)
	}
}

// TestHostKeyVerification checks that the server's key is always checked:
// against host-key when set, else known_hosts.
func TestHostKeyVerification(t *testing.T) {
	srv := testserver.SSHD(t)
	ctx := context.Background()
	otherKey := testHostKeyLine(t)

	list := func(c *Client) error {
		_, err := c.LTXFiles(ctx, 0)
		return err
	}
	wantRefused := func(t *testing.T, err error, mismatch bool, mentions ...string) {
		t.Helper()
		var hk *HostKeyError
		if !errors.As(err, &hk) {
			t.Fatalf("connected, or failed otherwise (%v); want a host key error", err)
		}
		if mismatch != (len(hk.Want) > 0) {
			t.Fatalf("error %q; want mismatch=%v", err, mismatch)
		}
		for _, m := range mentions {
			if !strings.Contains(err.Error(), m) {
				t.Fatalf("error %q does not mention %q", err, m)
			}
		}
		if retryable(err) {
			t.Fatalf("a refused host key is retried: %v", err)
		}
	}
	hostFP := fingerprint(t, srv.HostKey)

	t.Run("UnknownHost", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(kh, nil, 0o600)
		c := openTest(t, srv, srv.Dir(t), map[string]string{"host-key": "", "known-hosts": kh})
		wantRefused(t, list(c), false, hostFP, "host-key: "+srv.HostKey, fmt.Sprintf("ssh-keyscan -p %d 127.0.0.1 >> %s", srv.Port, kh))
	})
	t.Run("UnknownHostDefaultKnownHosts", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv("HOME", home)
		c := openTest(t, srv, srv.Dir(t), map[string]string{"host-key": ""})
		wantRefused(t, list(c), false, hostFP, "host-key: "+srv.HostKey, filepath.Join(home, ".ssh", "known_hosts"))

		// Once the server is in ~/.ssh/known_hosts, it is accepted.
		os.Mkdir(filepath.Join(home, ".ssh"), 0o700)
		os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte(srv.KnownHostsLine()+"\n"), 0o600)
		c = openTest(t, srv, srv.Dir(t), map[string]string{"host-key": ""})
		if err := list(c); err != nil {
			t.Fatalf("server in ~/.ssh/known_hosts: %v", err)
		}
	})
	t.Run("KnownHostsFile", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		// Another host's entry, then this one's, hashed as ssh-keyscan -H
		// writes it.
		hashed := ssh.MarshalAuthorizedKey(parseKey(t, srv.HostKey))
		lines := "example.com " + otherKey + "\n" + knownhosts.HashHostname(knownhosts.Normalize(srv.Addr())) + " " + string(hashed)
		os.WriteFile(kh, []byte(lines), 0o600)
		c := openTest(t, srv, srv.Dir(t), map[string]string{"host-key": "", "known-hosts": kh})
		if err := list(c); err != nil {
			t.Fatalf("server in known-hosts: %v", err)
		}
	})
	t.Run("KnownHostsMismatch", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(kh, []byte(fmt.Sprintf("[127.0.0.1]:%d %s\n", srv.Port, otherKey)), 0o600)
		c := openTest(t, srv, srv.Dir(t), map[string]string{"host-key": "", "known-hosts": kh})
		wantRefused(t, list(c), true, "MISMATCH", hostFP, fingerprint(t, otherKey), "ssh-keygen -R")
	})
	t.Run("WrongHostKey", func(t *testing.T) {
		c := openTest(t, srv, srv.Dir(t), map[string]string{"host-key": otherKey})
		wantRefused(t, list(c), true, "MISMATCH", hostFP, fingerprint(t, otherKey))
	})
	t.Run("RightHostKey", func(t *testing.T) {
		for _, hk := range []string{srv.HostKey, srv.KnownHostsLine(), otherKey + "\n" + srv.HostKey, hostFP} {
			c := openTest(t, srv, srv.Dir(t), map[string]string{"host-key": hk})
			if err := list(c); err != nil {
				t.Fatalf("host-key %q: %v", hk, err)
			}
		}
	})
}

// TestPasswordNotInErrors fails a login with a password and checks that no
// message shows it.
func TestPasswordNotInErrors(t *testing.T) {
	srv := testserver.SSHD(t)
	t.Setenv("HOME", t.TempDir()) // no default keys: the password is all there is
	t.Setenv("SSH_AUTH_SOCK", "")
	const secret = "Hunter2-Sup3rSecret"
	u := &url.URL{Scheme: "sftp", User: url.UserPassword(srv.User, secret), Host: srv.Addr(), Path: srv.Dir(t)}
	c, err := Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"host-key": srv.HostKey}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.LTXFiles(context.Background(), 0)
	if err == nil {
		t.Fatal("logged in with a password the server does not accept")
	}
	_, werr := c.WriteLTXFile(context.Background(), 0, 1, 1, strings.NewReader("x"), time.Now())
	_, oerr := c.OpenLTXFile(context.Background(), 0, 1, 1, 0, 0)
	for _, s := range []string{err.Error(), fmt.Sprint(werr), fmt.Sprint(oerr), c.String(), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
		if strings.Contains(s, secret) {
			t.Fatalf("the password shows in %q", s)
		}
	}
	want := fmt.Sprintf("replica sftp://%s@%s%s: list level 0: log in to %s as %q with password", srv.User, srv.Addr(), u.Path, srv.Addr(), srv.User)
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q; want it to start %q", err, want)
	}
}

// TestAgent logs in with a key held by ssh-agent (SSH_AUTH_SOCK).
func TestAgent(t *testing.T) {
	srv := testserver.SSHD(t)
	t.Setenv("HOME", t.TempDir())
	keyring := agent.NewKeyring()
	b, err := os.ReadFile(srv.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, nc); nc.Close() }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	u := &url.URL{Scheme: "sftp", User: url.User(srv.User), Host: srv.Addr(), Path: srv.Dir(t)}
	c, err := Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"host-key": srv.HostKey}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.LTXFiles(context.Background(), 0); err != nil {
		t.Fatalf("log in with ssh-agent: %v", err)
	}
}

// TestReconnect breaks the connection on the server side; the next
// operations reconnect, and a download in progress resumes where it was.
func TestReconnect(t *testing.T) {
	srv := testserver.SSHD(t)
	c := openTest(t, srv, srv.Dir(t), nil)
	ctx := context.Background()
	b := storagetest.File(t, 1, 1, 600, 1) // ~2.4 MB
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(b), time.Now()); err != nil {
		t.Fatal(err)
	}

	rc, err := c.OpenLTXFile(ctx, 0, 1, 1, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 1000)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}

	if n := srv.Signal(t, syscall.SIGKILL); n == 0 {
		t.Fatal("no session process to kill")
	}

	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read after the connection broke: %v", err)
	}
	if got := append(head, rest...); !bytes.Equal(got, b[100:]) {
		t.Fatalf("read %d bytes across a broken connection that differ from the %d stored", len(got), len(b)-100)
	}

	srv.Signal(t, syscall.SIGKILL)
	if _, err := c.WriteLTXFile(ctx, 0, 2, 2, bytes.NewReader(storagetest.File(t, 2, 2, 1, 2)), time.Now()); err != nil {
		t.Fatalf("write after the connection broke: %v", err)
	}
	srv.Signal(t, syscall.SIGKILL)
	files, err := c.LTXFiles(ctx, 0)
	if err != nil || len(files) != 2 {
		t.Fatalf("list after the connection broke: %v, %v", files, err)
	}
}

// TestCancelStuckServer makes the server hang (its listener and every
// session stopped); operations whose context ends must return instead of
// waiting for it, whether they wait on an open connection or on a new one,
// and the clients reconnect once it answers again.
func TestCancelStuckServer(t *testing.T) {
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	reading := openTest(t, srv, dir, nil)
	listing := openTest(t, srv, dir, nil)
	for _, c := range []*Client{reading, listing} {
		c.cancelGrace = 100 * time.Millisecond
	}
	ctx := context.Background()
	b := storagetest.File(t, 1, 1, 50, 1)
	if _, err := reading.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(b), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := listing.LTXFiles(ctx, 0); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := reading.OpenLTXFile(rctx, 0, 1, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}

	listener := srv.Process.Cmd.Process
	if err := listener.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if n := srv.Signal(t, syscall.SIGSTOP); n == 0 {
		t.Fatal("no session process to stop")
	}
	resume := func() {
		listener.Signal(syscall.SIGCONT)
		srv.Signal(t, syscall.SIGCONT)
	}
	t.Cleanup(resume)

	// A read waiting on an open connection.
	time.AfterFunc(300*time.Millisecond, cancel)
	err = returnsWithin(t, "read", func() error { _, err := io.ReadAll(rc); return err })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("read from a stuck server: %v; want a cancellation error", err)
	}

	ops := []struct {
		name string
		op   func(ctx context.Context) error
	}{
		// On the open connection: the listing itself gives up.
		{"list", func(ctx context.Context) error { _, err := listing.LTXFiles(ctx, 0); return err }},
		// On the open connection: the client closes it.
		{"write", func(ctx context.Context) error {
			_, err := listing.WriteLTXFile(ctx, 0, 2, 2, bytes.NewReader(storagetest.File(t, 2, 2, 50, 2)), time.Now())
			return err
		}},
		// On a new connection, whose handshake gets no answer.
		{"list again", func(ctx context.Context) error { _, err := listing.LTXFiles(ctx, 0); return err }},
	}
	for _, op := range ops {
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := returnsWithin(t, op.name, func() error { return op.op(ctx) })
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s on a stuck server: %v; want a deadline error", op.name, err)
		}
	}

	resume()
	for _, c := range []*Client{reading, listing} {
		if files, err := c.LTXFiles(ctx, 0); err != nil || len(files) != 1 {
			t.Fatalf("list once the server answers again: %v, %v", files, err)
		}
	}
}

// returnsWithin runs fn and fails the test if it hangs: a guard against a
// deadlock, far longer than fn needs.
func returnsWithin(t *testing.T, name string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not return after its context ended", name)
		return nil
	}
}

// TestTransfers checks that a download holds its transfer slot until the
// reader is closed.
func TestTransfers(t *testing.T) {
	srv := testserver.SSHD(t)
	u := &url.URL{Scheme: "sftp", User: url.User(srv.User), Host: srv.Addr(), Path: srv.Dir(t)}
	c, err := Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"key-path": srv.KeyPath, "host-key": srv.HostKey}, Transfers: storage.NewTransfers(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	b := storagetest.File(t, 1, 1, 2, 1)
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(b), time.Now()); err != nil {
		t.Fatal(err)
	}
	rc, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = c.OpenLTXFile(short, 0, 1, 1, 0, 0)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second download while the only slot is held: %v; want it to wait", err)
	}
	rc.Close()
	rc, err = c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
	if err != nil {
		t.Fatalf("download after the first reader was closed: %v", err)
	}
	rc.Close()
}

// TestStaleTempFiles checks that listings skip temp files and remove those
// left for a day by interrupted uploads.
func TestStaleTempFiles(t *testing.T) {
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	c := openTest(t, srv, dir, nil)
	level := filepath.Join(dir, "ltx", "0")
	os.MkdirAll(level, 0o755)
	name := "0000000000000001-0000000000000001.ltx"
	stale := filepath.Join(level, storage.TempName(name, time.Now().Add(-48*time.Hour)))
	fresh := filepath.Join(level, storage.TempName(name, time.Now()))
	for _, p := range []string{stale, fresh} {
		os.WriteFile(p, []byte("partial"), 0o644)
	}
	files, err := c.LTXFiles(context.Background(), 0)
	if err != nil || len(files) != 0 {
		t.Fatalf("level 0 with only temp files lists %v, %v", files, err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a two-day-old temp file was not removed: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("a temp file of an upload in progress was removed: %v", err)
	}
}

// TestReplaceWithoutPosixRename writes over a file the way the client does
// on a server without posix-rename@openssh.com (forced on OpenSSH's): the
// file in place is renamed aside first, so that at the moment a kill could
// stop the upload between the renames, both the old and the new file are
// whole on the server; afterwards only the new one is left, with its time.
func TestReplaceWithoutPosixRename(t *testing.T) {
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	c := openTest(t, srv, dir, nil)
	c.noPosixRename = true
	ctx := context.Background()
	level := filepath.Join(dir, "ltx", "0")
	name := "0000000000000001-0000000000000001.ltx"

	oldData := storagetest.File(t, 1, 1, 2, 1)
	newData := storagetest.File(t, 1, 1, 3, 2)
	oldAt := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	newAt := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	c.betweenRenames = func(string) error { t.Error("a write to a new name renamed something aside"); return nil }
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(oldData), oldAt); err != nil {
		t.Fatalf("write to a new name: %v", err)
	}

	calls := 0
	c.betweenRenames = func(aside string) error {
		calls++
		// A kill here leaves the replaced file whole under its aside
		// name, and the new one whole under a temp name.
		if want := filepath.Join(level, "."+name+".old"); aside != want {
			t.Errorf("the replaced file was renamed to %s; want %s", aside, want)
		}
		if got, err := os.ReadFile(aside); err != nil || !bytes.Equal(got, oldData) {
			t.Errorf("the replaced file renamed aside holds %d bytes (%v); want the %d it held", len(got), err, len(oldData))
		}
		entries, err := os.ReadDir(level)
		if err != nil {
			t.Fatal(err)
		}
		whole := 0
		for _, e := range entries {
			if got, _ := os.ReadFile(filepath.Join(level, e.Name())); storage.IsTempName(e.Name()) && bytes.Equal(got, newData) {
				whole++
			}
		}
		if whole != 1 || len(entries) != 2 {
			t.Errorf("between the renames %s holds %d entries, %d of them the whole new file under a temp name; want the two files", level, len(entries), whole)
		}
		return nil
	}
	info, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(newData), newAt)
	if err != nil {
		t.Fatalf("write over a file without posix-rename: %v", err)
	}
	if calls != 1 {
		t.Fatalf("the replaced file was renamed aside %d times; want once", calls)
	}
	if info.Size != int64(len(newData)) || !info.CreatedAt.Equal(newAt) {
		t.Fatalf("write returned %+v; want %d bytes at %s", info, len(newData), newAt)
	}
	entries, err := os.ReadDir(level)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		t.Fatalf("after the write %s holds %v; want only %s", level, entries, name)
	}
	if got, err := os.ReadFile(filepath.Join(level, name)); err != nil || !bytes.Equal(got, newData) {
		t.Fatalf("%s holds %d bytes (%v) that are not the new file", name, len(got), err)
	}
	files, err := c.LTXFiles(ctx, 0)
	if err != nil || len(files) != 1 || files[0].Size != int64(len(newData)) || !files[0].CreatedAt.Equal(newAt) {
		t.Fatalf("listed %+v, %v; want the new file at %s", files, err, newAt)
	}
}

// TestInterruptedReplace stops a replacement without posix-rename@openssh.com
// where a kill could: after the file in place was renamed aside, before the
// new one took its name. The next listing renames the old file back, so the
// file is never missing for long; writing it again then works.
func TestInterruptedReplace(t *testing.T) {
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	c := openTest(t, srv, dir, nil)
	c.noPosixRename = true
	ctx := context.Background()
	level := filepath.Join(dir, "ltx", "0")
	name := "0000000000000002-0000000000000003.ltx"

	before := storagetest.File(t, 1, 1, 1, 1)
	oldData := storagetest.File(t, 2, 3, 2, 2)
	newData := storagetest.File(t, 2, 3, 3, 3)
	oldAt := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	newAt := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(before), oldAt); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteLTXFile(ctx, 0, 2, 3, bytes.NewReader(oldData), oldAt); err != nil {
		t.Fatal(err)
	}

	killed := errors.New("killed between the renames")
	c.betweenRenames = func(string) error { return killed }
	if _, err := c.WriteLTXFile(ctx, 0, 2, 3, bytes.NewReader(newData), newAt); !errors.Is(err, killed) {
		t.Fatalf("the interrupted write returned %v", err)
	}
	if _, err := os.Stat(filepath.Join(level, name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after the interruption %s is in place (%v); the test did not stop between the renames", name, err)
	}
	c.betweenRenames = nil

	// A second client, as after a restart.
	c2 := openTest(t, srv, dir, nil)
	files, err := c2.LTXFiles(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[1].MinTXID != 2 || files[1].MaxTXID != 3 || files[1].Size != int64(len(oldData)) || !files[1].CreatedAt.Equal(oldAt) {
		t.Fatalf("listed %+v; want 1-1 and the old 2-3 (%d bytes at %s)", files, len(oldData), oldAt)
	}
	if got := readFile(t, c2, 0, 2, 3); !bytes.Equal(got, oldData) {
		t.Fatalf("2-3 reads back %d bytes that are not the old file", len(got))
	}
	if names := dirNames(t, level); len(names) != 2 || names[0] != "0000000000000001-0000000000000001.ltx" || names[1] != name {
		t.Fatalf("after the listing %s holds %v; want the two files only", level, names)
	}

	// The replacement, done again, now works.
	if _, err := c.WriteLTXFile(ctx, 0, 2, 3, bytes.NewReader(newData), newAt); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, c2, 0, 2, 3); !bytes.Equal(got, newData) {
		t.Fatalf("2-3 reads back %d bytes that are not the new file", len(got))
	}
	if names := dirNames(t, level); len(names) != 2 {
		t.Fatalf("after the replacement %s holds %v; want the two files only", level, names)
	}
}

// TestAsideLeftovers checks what listings and deletions do with a file an
// interrupted replacement left aside while its replacement is in place (a
// kill after the second rename): listings remove it, and deleting the file
// removes it too, so that no listing can bring a deleted file back.
func TestAsideLeftovers(t *testing.T) {
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	c := openTest(t, srv, dir, nil)
	c.noPosixRename = true
	ctx := context.Background()
	level := filepath.Join(dir, "ltx", "0")
	name := "0000000000000001-0000000000000001.ltx"
	newData := storagetest.File(t, 1, 1, 2, 2)
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(newData), time.Now()); err != nil {
		t.Fatal(err)
	}
	aside := filepath.Join(level, "."+name+".old")
	if err := os.WriteFile(aside, storagetest.File(t, 1, 1, 1, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := c.LTXFiles(ctx, 0)
	if err != nil || len(files) != 1 || files[0].Size != int64(len(newData)) {
		t.Fatalf("listed %+v, %v; want the new file only", files, err)
	}
	if names := dirNames(t, level); len(names) != 1 || names[0] != name {
		t.Fatalf("after the listing %s holds %v; want %s only", level, names, name)
	}

	// A file deleted while a copy of it is aside stays deleted.
	if err := os.WriteFile(aside, storagetest.File(t, 1, 1, 1, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteLTXFiles(ctx, files); err != nil {
		t.Fatal(err)
	}
	if files, err := c.LTXFiles(ctx, 0); err != nil || len(files) != 0 {
		t.Fatalf("after the deletion listed %+v, %v; want nothing", files, err)
	}
	if names := dirNames(t, level); len(names) != 0 {
		t.Fatalf("after the deletion %s holds %v", level, names)
	}
}

// readFile reads a whole file through c.
func readFile(t *testing.T, c *Client, level int, minTXID, maxTXID ltx.TXID) []byte {
	t.Helper()
	rc, err := c.OpenLTXFile(context.Background(), level, minTXID, maxTXID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dirNames returns the names in a directory on disk, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestErrors checks that failures name the destination and the file.
func TestErrors(t *testing.T) {
	srv := testserver.SSHD(t)
	dir := srv.Dir(t)
	c := openTest(t, srv, dir, nil)
	ctx := context.Background()

	_, err := c.OpenLTXFile(ctx, 0, 7, 7, 0, 0)
	want := fmt.Sprintf("replica sftp://%s@%s%s: open level 0 file 0000000000000007-0000000000000007.ltx", srv.User, srv.Addr(), dir)
	if !errors.Is(err, storage.ErrNotFound) || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), filepath.Join(dir, "ltx/0/0000000000000007-0000000000000007.ltx")) {
		t.Fatalf("missing file: %v; want ErrNotFound, starting %q and naming the path", err, want)
	}

	// A level "directory" that is a file cannot be written to.
	os.MkdirAll(filepath.Join(dir, "ltx"), 0o755)
	os.WriteFile(filepath.Join(dir, "ltx", "4"), []byte("x"), 0o644)
	_, err = c.WriteLTXFile(ctx, 4, 1, 1, strings.NewReader("data"), time.Now())
	if err == nil || !strings.Contains(err.Error(), "write level 4 file 0000000000000001-0000000000000001.ltx") || !strings.Contains(err.Error(), filepath.Join(dir, "ltx", "4")) {
		t.Fatalf("write under a file: %v", err)
	}
	if _, err := c.LTXFiles(ctx, 10); err == nil {
		t.Fatal("level 10 listed")
	}

	// A closed client says so.
	c.Close()
	if _, err := c.LTXFiles(ctx, 0); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("list on a closed client: %v", err)
	}
}

// TestServerDown checks that a refused connection is retried, then
// reported with the address.
func TestServerDown(t *testing.T) {
	port := testserver.FreePort(t)
	u := &url.URL{Scheme: "sftp", User: url.User("alice"), Host: testserver.Addr(port), Path: "/x"}
	c, err := Open(context.Background(), storage.Spec{URL: u, Keys: map[string]string{"password": "p", "host-key": testHostKeyLine(t)}})
	if err != nil {
		t.Fatal(err)
	}
	c.retry = storage.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: time.Millisecond}
	_, err = c.LTXFiles(context.Background(), 0)
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "connect to "+testserver.Addr(port)) {
		t.Fatalf("server down: %v", err)
	}
}

func fingerprint(t *testing.T, line string) string {
	return ssh.FingerprintSHA256(parseKey(t, line))
}

func parseKey(t *testing.T, line string) ssh.PublicKey {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
