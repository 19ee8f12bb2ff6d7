package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// proc is a child process of the benchmark: walship or the application.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  bytes.Buffer // stdout
	log  *os.File     // stderr
	done chan struct{}
	hwm  atomic.Int64 // the largest VmHWM read while it ran, bytes
	anon atomic.Int64 // the largest RssAnon read while it ran, bytes
	// watched is closed once watchHWM has stopped reading hwm.
	watched chan struct{}
}

// start runs a child in a process group of its own (pgid 0) or in an existing
// one, so that the RPO scenario can kill walship and the application with one
// signal.
func start(name string, pgid int, logDir string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{name: name, cmd: cmd, log: logf, done: make(chan struct{}), watched: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &syncWriter{w: &p.out}, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: pgid, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	go p.watchHWM()
	return p, nil
}

// hwmEvery is how often a child's peak RSS is read while it runs.
const hwmEvery = 10 * time.Millisecond

// watchHWM reads the child's own peak RSS (VmHWM) until it exits, and the
// largest part of its RSS that was anonymous memory (RssAnon, not a mapped
// file). The kernel's figure for a finished child (wait4's ru_maxrss)
// cannot be used: Go starts children with vfork, and exec counts the
// high-water mark of the memory it replaces, the benchmark's own, into the
// child's. VmHWM never falls, so only growth in the last hwmEvery of the
// child's life is missed; RssAnon is a sample.
func (p *proc) watchHWM() {
	defer close(p.watched)
	t := time.NewTicker(hwmEvery)
	defer t.Stop()
	for {
		hwm, anon := readPeaks(p.pid())
		if hwm > p.hwm.Load() {
			p.hwm.Store(hwm)
		}
		if anon > p.anon.Load() {
			p.anon.Store(anon)
		}
		select {
		case <-p.done:
			return
		case <-t.C:
		}
	}
}

// readPeaks is a running process's VmHWM and RssAnon in bytes; 0 once it
// has exited.
func readPeaks(pid int) (hwm, anon int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	return statusKB(b, "VmHWM"), statusKB(b, "RssAnon")
}

// statusKB is the field key of a /proc/PID/status, in bytes; 0 if absent.
func statusKB(status []byte, key string) int64 {
	_, rest, ok := bytes.Cut(status, []byte("\n"+key+":"))
	if !ok {
		return 0
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(line)), " kB"), 10, 64)
	return kb * 1024
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends sig and waits for the process to exit, killing it after timeout.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) error {
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %s of %s; killed", p.name, timeout, sig)
	}
}

// wait waits for the process to exit by itself and fails if it did not exit 0.
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s ran longer than %s; killed; see %s", p.name, timeout, p.log.Name())
	}
	if !p.cmd.ProcessState.Success() {
		return fmt.Errorf("%s: %s; see %s", p.name, p.cmd.ProcessState, p.log.Name())
	}
	return nil
}

// waitLine waits until the process prints line on stdout.
func (p *proc) waitLine(line string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.stdout(), line+"\n") {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%s); see %s", p.name, p.cmd.ProcessState, p.log.Name())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not print %q within %s", p.name, line, timeout)
}

func (p *proc) stdout() string {
	w := p.cmd.Stdout.(*syncWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return p.out.String()
}

// appResult decodes the application's last line.
func (p *proc) appResult() (appResult, error) {
	var r appResult
	lines := strings.Split(strings.TrimSpace(p.stdout()), "\n")
	err := json.Unmarshal([]byte(lines[len(lines)-1]), &r)
	return r, err
}

// usage is a finished process's CPU time and peak resident memory.
type usage struct {
	cpu      time.Duration
	peakRSS  int64 // bytes, its own: see watchHWM
	peakAnon int64 // the largest anonymous part of its RSS seen, bytes
}

func (p *proc) usage() usage {
	<-p.watched
	u := usage{peakRSS: p.hwm.Load(), peakAnon: p.anon.Load()}
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return u
}

// sample is a running process's CPU time and memory, read from /proc.
type sample struct {
	at      time.Time
	cpu     time.Duration
	rss     int64 // bytes
	anon    int64 // the part of rss that is not the mapped binary and files
	peakRSS int64
	parts   rssParts // rss by what it holds; zero if smaps could not be read
}

func sampleProc(pid int) (sample, error) {
	s := sample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	s.cpu = time.Duration(utime+stime) * time.Second / clockTicks
	st, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer st.Close()
	sc := bufio.NewScanner(st)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.rss = kb * 1024
		case "VmHWM":
			s.peakRSS = kb * 1024
		case "RssAnon":
			s.anon = kb * 1024
		}
	}
	s.parts, _ = readRSSParts(pid)
	return s, sc.Err()
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on Linux.
const clockTicks = 100

// dropCaches empties the page cache, so that a measurement reads from disk.
// It needs root; without it the figure is marked as taken with a warm cache.
func dropCaches() bool {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0) == nil
}
