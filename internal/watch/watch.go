// Package watch reports changes to files, as they happen, to the databases
// of a process that subscribe to them. One Watcher serves every database:
// the kernel allows few inotify instances per user.
package watch

import (
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher reports changes to databases and their WALs. One serves every
// database of a process: the kernel allows few inotify instances per user
// (128 by default), and each costs a goroutine with a 64 KiB buffer.
type Watcher struct {
	log *slog.Logger

	// opMu serialises subscribing and unsubscribing, which call into
	// fsnotify. They do so without holding mu: fsnotify may block sending
	// an error while holding its own lock, until loop (which takes mu)
	// reads it.
	opMu sync.Mutex

	mu    sync.Mutex
	w     *fsnotify.Watcher      // nil until the first subscriber; nil again after the last
	dirs  map[string]int         // watched directories, with their subscriber counts
	subs  map[string][]*watchSub // file path -> subscribers
	pause time.Duration          // after each batch of events; the smallest subscriber's
	done  chan struct{}
}

// DefaultPause is how long a watcher waits after each batch of events when
// no subscriber asks for less.
const DefaultPause = 5 * time.Millisecond

type watchSub struct {
	c     chan struct{}
	pause time.Duration
}

// New returns a Watcher; it opens nothing until a database subscribes.
func New(log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{log: log, dirs: map[string]int{}, subs: map[string][]*watchSub{}}
}

// Subscribe reports changes to the files at paths (all in one directory) on
// the returned channel, which holds at most one pending notice. After each
// batch of events the watcher waits pause, so that the kernel merges the
// thousands of writes a second of a busy database into one event. If the
// directory cannot be watched, it returns the error and the caller polls.
func (w *Watcher) Subscribe(paths []string, pause time.Duration) (<-chan struct{}, func(), error) {
	w.opMu.Lock()
	defer w.opMu.Unlock()
	dir := filepath.Dir(paths[0])
	w.mu.Lock()
	fw, watched := w.w, w.dirs[dir] > 0
	w.mu.Unlock()
	if fw == nil {
		var err error
		if fw, err = fsnotify.NewWatcher(); err != nil {
			return nil, nil, err
		}
	}
	if !watched {
		if err := fw.Add(dir); err != nil {
			if w.w == nil {
				fw.Close() // opened for this subscriber only
			}
			return nil, nil, err
		}
	}
	s := &watchSub{c: make(chan struct{}, 1), pause: pause}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.w == nil {
		w.w, w.done = fw, make(chan struct{})
		go w.loop(fw, w.done)
	}
	w.dirs[dir]++
	for _, p := range paths {
		w.subs[p] = append(w.subs[p], s)
	}
	w.setPause()
	return s.c, func() { w.unsubscribe(dir, paths, s) }, nil
}

func (w *Watcher) unsubscribe(dir string, paths []string, s *watchSub) {
	w.opMu.Lock()
	defer w.opMu.Unlock()
	w.mu.Lock()
	for _, p := range paths {
		subs := w.subs[p]
		for i, x := range subs {
			if x == s {
				subs = append(subs[:i], subs[i+1:]...)
				break
			}
		}
		if len(subs) == 0 {
			delete(w.subs, p)
		} else {
			w.subs[p] = subs
		}
	}
	fw := w.w
	w.dirs[dir]--
	removeDir := w.dirs[dir] <= 0
	if removeDir {
		delete(w.dirs, dir)
	}
	w.setPause()
	closeAll := len(w.dirs) == 0
	if closeAll {
		// The last database stopped: release the inotify instance.
		close(w.done)
		w.w = nil
	}
	w.mu.Unlock()
	switch {
	case closeAll:
		fw.Close()
	case removeDir:
		fw.Remove(dir)
	}
}

func (w *Watcher) setPause() {
	w.pause = DefaultPause
	for _, subs := range w.subs {
		for _, s := range subs {
			w.pause = min(w.pause, s.pause)
		}
	}
}

// loop hands each event to the subscribers of its file. It reads what the
// kernel has queued, then pauses: while it pauses, the kernel merges repeated
// writes to a file into one queued event.
func (w *Watcher) loop(fw *fsnotify.Watcher, done chan struct{}) {
	for {
		select {
		case <-done:
			return
		case ev, ok := <-fw.Events:
			if !ok {
				return
			}
			w.notify(ev.Name)
		case err, ok := <-fw.Errors:
			if !ok {
				return
			}
			// On a queue overflow events were lost: everyone looks.
			w.log.Warn("file watch error; checking every database", "error", err)
			w.notifyAll()
		}
	drain:
		for {
			select {
			case ev, ok := <-fw.Events:
				if !ok {
					return
				}
				w.notify(ev.Name)
			default:
				break drain
			}
		}
		w.mu.Lock()
		pause := w.pause
		w.mu.Unlock()
		time.Sleep(pause)
	}
}

func (w *Watcher) notify(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range slices.Concat(w.subs[name], w.subs[wholeDir(filepath.Dir(name))]) {
		select {
		case s.c <- struct{}{}:
		default:
		}
	}
}

func (w *Watcher) notifyAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, subs := range w.subs {
		for _, s := range subs {
			select {
			case s.c <- struct{}{}:
			default:
			}
		}
	}
}

// SubscribeDir is Subscribe for every file of the directory dir: a file
// created, written, renamed or removed in it. It is how a directory of
// databases learns of new ones.
func (w *Watcher) SubscribeDir(dir string, pause time.Duration) (<-chan struct{}, func(), error) {
	return w.Subscribe([]string{wholeDir(filepath.Clean(dir))}, pause)
}

// wholeDir is the key of the subscribers to every file of dir: a path
// ending in a separator, which no file's (cleaned) path does.
func wholeDir(dir string) string { return dir + string(filepath.Separator) }
