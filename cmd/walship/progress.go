package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// drawEvery is how often a progress line is redrawn at most.
const drawEvery = 200 * time.Millisecond

// meter draws the progress of long work (a restore, a verify) on one line
// of a terminal: "restoring 1.2 GB of 4.0 GB (30%), 85.0 MB/s, 36s left".
// The engine reports bytes through a callback; only the command line knows
// of terminals. Standard error that is not a terminal (a pipe, a file,
// journald) gets nothing, so logs stay clean.
type meter struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	start time.Time
	drawn time.Time // when the line was last drawn; zero before
	width int       // of the line drawn, to blank what a shorter one leaves
}

// newMeter returns a meter drawing on e's standard error, or nil when that
// is not a terminal.
func newMeter(e *env, label string) *meter {
	f, ok := e.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &meter{w: e.stderr, label: label}
}

// progress returns the callback to give the engine: nil for a nil meter,
// so that the engine does not even count.
func (m *meter) progress() func(done, total int64) {
	if m == nil {
		return nil
	}
	return m.report
}

func (m *meter) report(done, total int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if m.drawn.IsZero() {
		m.start = now // the rate is of this work, not of what came before
	} else if now.Sub(m.drawn) < drawEvery && done < total {
		return
	}
	m.drawn = now
	line := renderProgress(m.label, done, total, now.Sub(m.start))
	pad := max(m.width-len(line), 0)
	m.width = len(line)
	fmt.Fprintf(m.w, "\r%s%*s", line, pad, "")
}

// clear erases the line, before the result is printed.
func (m *meter) clear() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.drawn.IsZero() {
		fmt.Fprintf(m.w, "\r%*s\r", m.width, "")
	}
	m.drawn, m.width = time.Time{}, 0
}

// copyProgress returns what replicate gives a database to show a whole copy
// of it being staged (a first snapshot): a meter that erases itself when
// the copy is done, since log lines follow on the same terminal. Nil when
// standard error is not a terminal.
func copyProgress(e *env, dbPath string) func(done, total int64) {
	m := newMeter(e, "staging a copy of "+dbPath+":")
	if m == nil {
		return nil
	}
	return func(done, total int64) {
		m.report(done, total)
		if done >= total {
			m.clear()
		}
	}
}

// renderProgress is the meter's line: bytes done of total, the share, the
// rate so far and the time left at that rate.
func renderProgress(label string, done, total int64, elapsed time.Duration) string {
	done = min(done, total) // a read ahead may count past the end
	line := fmt.Sprintf("%s %s of %s", label, formatBytes(done), formatBytes(total))
	if total > 0 {
		line += fmt.Sprintf(" (%d%%)", done*100/total)
	}
	if elapsed < time.Second/2 || done == 0 {
		return line
	}
	rate := float64(done) / elapsed.Seconds()
	line += fmt.Sprintf(", %s/s", formatBytes(int64(rate)))
	if done < total {
		left := time.Duration(float64(total-done) / rate * float64(time.Second))
		line += fmt.Sprintf(", %s left", left.Round(time.Second))
	}
	return line
}
