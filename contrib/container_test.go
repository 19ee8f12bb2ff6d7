package contrib_test

import (
	"bytes"
	"database/sql"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	_ "modernc.org/sqlite"
)

// dockerfile is the Dockerfile's instructions, continuation lines joined.
type dockerfile []instruction

type instruction struct{ cmd, args string }

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var d dockerfile
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cmd, args, _ := strings.Cut(line, " ")
		d = append(d, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
	}
	return d
}

// finalStage returns the instructions of the last stage, the image.
func (d dockerfile) finalStage() dockerfile {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i].cmd == "FROM" {
			return d[i:]
		}
	}
	return nil
}

// buildCommand returns the words of the RUN that builds walship.
func (d dockerfile) buildCommand(t *testing.T) []string {
	t.Helper()
	for _, in := range d {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			return shellWords(t, in.args)
		}
	}
	t.Fatal("the Dockerfile has no RUN with go build")
	return nil
}

// shellWords splits s as the shell would, for the quoting the Dockerfile
// uses (double quotes, no escapes).
func shellWords(t *testing.T, s string) []string {
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, w.String())
				w.Reset()
			}
			inWord = false
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quotes in %q", s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// TestDockerfile: the image runs as a user that is not root, holds a
// static binary built without cgo, and starts walship.
func TestDockerfile(t *testing.T) {
	d := readDockerfile(t)
	final := d.finalStage()
	if base := final[0].args; base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		t.Errorf("the image is FROM %s; want scratch or distroless static (no shell)", base)
	}
	var user, entrypoint string
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "RUN":
			t.Errorf("the image runs %q: it has no shell", in.args)
		}
	}
	if name, _, _ := strings.Cut(user, ":"); name == "" || name == "0" || name == "root" {
		t.Errorf("USER %q: the image must run as a user that is not root", user)
	}
	if !strings.Contains(entrypoint, "walship") {
		t.Errorf("ENTRYPOINT %s does not run walship", entrypoint)
	}
	build := strings.Join(d.buildCommand(t), " ")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build (%s) lacks %s", build, want)
		}
	}
}

// image is a directory holding what the image holds, to run its binary in.
type image struct {
	root string
	uid  int // the image's USER when the test can switch to it, else -1
}

// buildImage builds walship with the Dockerfile's command into a directory
// laid out as the image's final stage.
func buildImage(t *testing.T) *image {
	t.Helper()
	d := readDockerfile(t)
	im := &image{root: t.TempDir(), uid: -1}
	if err := os.Chmod(im.root, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(im.root, "usr/local/bin/walship")
	words := d.buildCommand(t)
	var env, args []string
	for i := 0; i < len(words); i++ {
		switch w := words[i]; {
		case len(args) == 0 && strings.Contains(w, "="):
			env = append(env, w)
		case w == "-o":
			args = append(args, w, bin)
			i++
		default:
			args = append(args, strings.ReplaceAll(w, "${VERSION}", "container-test"))
		}
	}
	if len(args) < 2 || args[0] != "go" {
		t.Fatalf("cannot run the Dockerfile's build %q", words)
	}
	cmd := exec.Command("go", args[1:]...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(words, " "), err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary is dynamically linked: it cannot run in an image FROM scratch")
		}
	}
	for _, in := range d.finalStage() {
		if in.cmd == "USER" && os.Getuid() == 0 {
			if _, err := fmt.Sscanf(in.args, "%d", &im.uid); err != nil {
				t.Fatalf("USER %q is not numeric: a scratch image has no /etc/passwd", in.args)
			}
		}
	}
	// The other files the final stage copies in.
	for _, in := range d.finalStage() {
		if in.cmd != "COPY" {
			continue
		}
		words := strings.Fields(in.args)
		dst := filepath.Join(im.root, words[len(words)-1])
		switch {
		case strings.HasSuffix(dst, "/usr/local/bin/walship"):
		case strings.HasSuffix(dst, ".crt"):
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		case strings.HasSuffix(dst, "/tmp"):
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dst, 0o1777); err != nil {
				t.Fatal(err)
			}
		case strings.HasSuffix(dst, "/data"):
			im.dir(t, "data")
		default:
			t.Fatalf("the image copies in %s: teach this test what it holds", in.args)
		}
	}
	return im
}

// dir makes a directory in the image, owned by its user, as a volume the
// image's user can write.
func (im *image) dir(t *testing.T, path string) string {
	t.Helper()
	p := filepath.Join(im.root, path)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	im.chown(t, p)
	return p
}

func (im *image) chown(t *testing.T, p string) {
	t.Helper()
	if im.uid < 0 {
		return
	}
	err := filepath.Walk(p, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, im.uid, im.uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// path returns where the binary sees the image's file p: p itself in the
// chroot, else inside the image's directory.
func (im *image) path(p string) string {
	if im.uid >= 0 {
		return p
	}
	return filepath.Join(im.root, p)
}

// run runs walship as the container would: the image's files alone (a
// chroot into the image's directory), its user, Docker's environment for a
// user without a passwd entry, and no shell. Without root it runs the same
// binary, as the test's user, with that environment.
func (im *image) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var cmd *exec.Cmd
	if im.uid >= 0 {
		cmd = exec.Command("/usr/local/bin/walship", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Chroot:     im.root,
			Credential: &syscall.Credential{Uid: uint32(im.uid), Gid: uint32(im.uid)},
		}
		cmd.Dir = "/"
	} else {
		args = slices.Clone(args) // the caller's stay as the image sees them
		cmd = exec.Command(filepath.Join(im.root, "usr/local/bin/walship"), args...)
		for i, a := range args {
			if strings.HasPrefix(a, "/") {
				args[i] = im.path(a)
			} else if strings.HasPrefix(a, "file:///") {
				args[i] = "file://" + im.path(strings.TrimPrefix(a, "file://"))
			}
		}
		cmd.Args = append([]string{cmd.Path}, args...)
		cmd.Dir = im.root
	}
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "HOSTNAME=walship-test"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (im *image) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := im.run(t, args...)
	if err != nil {
		t.Fatalf("walship %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestContainerEntryPoints runs the sidecar pattern of contrib/kubernetes
// with the image's binary, user and files: the init container restores the
// database only when it is missing and the replica holds one, and the
// sidecar replicates it on.
func TestContainerEntryPoints(t *testing.T) {
	im := buildImage(t)
	if im.uid < 0 {
		t.Log("not root: running as the test's user, without a chroot")
	}
	data := im.dir(t, "data")
	im.dir(t, "replica")
	if err := os.WriteFile(filepath.Join(im.root, "etc/walship.yml"), []byte("dbs:\n  - path: "+im.path("/data/app.db")+"\n    replica:\n      url: file://"+im.path("/replica")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The first pod: nothing to restore, an empty volume.
	restoreArgs := []string{"restore", "-if-db-not-exists", "-if-replica-exists", "-o", "/data/app.db", "file:///replica"}
	if out := im.mustRun(t, restoreArgs...); !strings.Contains(out, "holds no backup; nothing restored") {
		t.Fatalf("restore into an empty replica said %q", out)
	}
	// The application creates its database; the sidecar replicates it.
	db := filepath.Join(data, "app.db")
	exec1(t, db, "PRAGMA journal_mode=wal", "CREATE TABLE t (v TEXT)", "INSERT INTO t VALUES ('one'), ('two')")
	im.chown(t, data)
	im.mustRun(t, "replicate", "-once", "-config", "/etc/walship.yml")

	// The pod moves to a node without the volume: the init container
	// restores it, a restart of the pod then leaves it alone.
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	im.dir(t, "data")
	if out := im.mustRun(t, restoreArgs...); !strings.Contains(out, "restored TXID") {
		t.Fatalf("restore said %q", out)
	}
	if out := im.mustRun(t, restoreArgs...); !strings.Contains(out, "already exists; nothing restored") {
		t.Fatalf("a second restore said %q", out)
	}
	if got := rows(t, db); got != "one,two" {
		t.Fatalf("restored rows %q", got)
	}
	// The sidecar goes on with the restored database's history. It starts
	// before the application writes (a native sidecar, an init container
	// with restartPolicy: Always, starts before the application's
	// containers): a database restored without its staging directory is
	// taken for the replica's owner only while its content is the
	// replica's newest state.
	im.mustRun(t, "replicate", "-once", "-config", "/etc/walship.yml")
	exec1(t, db, "INSERT INTO t VALUES ('three')")
	im.chown(t, data)
	im.mustRun(t, "replicate", "-once", "-config", "/etc/walship.yml")
	im.dir(t, "check")
	im.mustRun(t, "restore", "-o", "/check/app.db", "file:///replica")
	if got := rows(t, filepath.Join(im.root, "check/app.db")); got != "one,two,three" {
		t.Fatalf("the replica restores rows %q", got)
	}
}

func exec1(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func rows(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var s string
	if err := db.QueryRow("SELECT group_concat(v, ',') FROM (SELECT v FROM t ORDER BY rowid)").Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}
