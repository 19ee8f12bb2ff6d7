package child

import (
	"slices"
	"syscall"
	"testing"
	"time"
)

// Split reads a command line as Litestream's exec does: quotes and
// backslashes as in a shell, nothing expanded.
func TestSplit(t *testing.T) {
	for line, want := range map[string][]string{
		"myapp serve":                    {"myapp", "serve"},
		"  myapp   -port  8080 ":         {"myapp", "-port", "8080"},
		`sh -c 'echo "$HOME" && exit 3'`: {"sh", "-c", `echo "$HOME" && exit 3`},
		`app "a b" c\ d`:                 {"app", "a b", "c d"},
		"app $HOME":                      {"app", "$HOME"},
	} {
		got, err := Split(line)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Split(%q) = %q, %v; want %q", line, got, err, want)
		}
	}
	for _, bad := range []string{"", "   ", `app "unclosed`} {
		if got, err := Split(bad); err == nil {
			t.Errorf("Split(%q) = %q; want an error", bad, got)
		}
	}
}

// The child's exit code is its status; a child killed by a signal gives
// 128+N, as a shell reports it.
func TestStatus(t *testing.T) {
	p, err := Start([]string{"sh", "-c", "exit 7"})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if got := p.Status(); got != 7 {
		t.Errorf("exit 7: status %d (%s)", got, p.Describe())
	}

	p, err = Start([]string{"sleep", "60"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if got := p.Status(); got != 128+int(syscall.SIGTERM) {
		t.Errorf("killed by SIGTERM: status %d (%s), want %d", got, p.Describe(), 128+int(syscall.SIGTERM))
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("signal to a child that exited: %v", err)
	}
}

// Stop kills a child that ignores SIGTERM once the grace period passes.
func TestStopKills(t *testing.T) {
	p, err := Start([]string{"sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the shell set its trap; a TERM before it kills it, which passes too
	p.Stop(200 * time.Millisecond)
	if got := p.Status(); got != 128+int(syscall.SIGKILL) && got != 128+int(syscall.SIGTERM) {
		t.Errorf("stopped child: status %d (%s)", got, p.Describe())
	}
}

// A program that does not exist is an error that names it.
func TestStartMissing(t *testing.T) {
	if _, err := Start([]string{"walship-no-such-program"}); err == nil {
		t.Fatal("started a program that does not exist")
	}
}
