package origination

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// Debouncing: a reload runs debounceDelay after the last event of a burst,
// and at most debounceMax after its first, however long the burst.
const (
	debounceDelay = 100 * time.Millisecond
	debounceMax   = time.Second
)

// Run watches the folders of every wanted secret and reloads on change
// (debounced), and reloads everything every Resync, until ctx ends. After
// a reload that changed Secrets it calls OnChange. It returns nil when ctx
// ends. If the file watcher cannot be created (inotify limits), it logs
// that and relies on the periodic resync. Call it once.
func (s *Store) Run(ctx context.Context) error {
	w := &watches{dirs: map[string]os.FileInfo{}, failed: map[string]bool{}, log: s.log}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		s.log.Error("cannot watch TLS files; relying on the periodic re-check", zap.Duration(keyResync, s.cfg.Resync), zap.Error(err))
	} else {
		w.w = fw
		defer fw.Close()
	}
	refresh := func() {
		w.sync(s.watchDirs())
		if s.reload() && s.cfg.OnChange != nil {
			s.cfg.OnChange()
		}
	}
	refresh() // files may have changed between Want and the first watch
	s.log.Info("watching tls secret files", zap.Int(keyFolders, w.count()), zap.Duration(keyResync, s.cfg.Resync))

	resync := time.NewTicker(s.cfg.Resync)
	defer resync.Stop()
	var d debouncer
	defer d.stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
			refresh()
		case <-resync.C:
			refresh()
		case <-d.fire:
			d.fire = nil
			refresh()
		case ev := <-w.events():
			w.forget(ev)
			d.event(time.Now())
		case err := <-w.errors():
			// An overflow or a read error can hide changes: reload.
			s.log.Warn("TLS file watcher error", zap.Error(err))
			d.event(time.Now())
		}
	}
}

// watchDirs lists the folders to watch for the wanted secrets: each file's
// folder (where renames and "..data" swaps happen), the folder of its
// symlink target, and for credentials the cert dir and the credential's
// folder, so that a folder created later is seen.
func (s *Store) watchDirs() []string {
	s.update.Lock()
	defer s.update.Unlock()
	var dirs []string
	for _, e := range s.sorted() {
		if name := e.src.CredentialName; name != "" {
			if dir, err := credentialPath(s.cfg.CertDir, name); err == nil {
				dirs = append(dirs, s.cfg.CertDir, dir)
			}
		}
		p, err := resolve(e.src, s.cfg.CertDir, e.want)
		if err != nil {
			continue
		}
		for _, f := range []string{p.cert, p.key, p.ca} {
			if f == "" {
				continue
			}
			dirs = append(dirs, filepath.Dir(f))
			if r, err := filepath.EvalSymlinks(f); err == nil {
				dirs = append(dirs, filepath.Dir(r))
			}
		}
	}
	return dirs
}

// watches are the folders an fsnotify watcher watches.
type watches struct {
	w      *fsnotify.Watcher // nil when none could be created
	dirs   map[string]os.FileInfo
	failed map[string]bool // folders whose Add failed, logged once
	log    *zap.Logger
}

// count is how many folders are watched.
func (w *watches) count() int { return len(w.dirs) }

// events returns the watcher's events, or nil (never ready) without one.
func (w *watches) events() <-chan fsnotify.Event {
	if w.w == nil {
		return nil
	}
	return w.w.Events
}

// errors returns the watcher's errors, or nil (never ready) without one.
func (w *watches) errors() <-chan error {
	if w.w == nil {
		return nil
	}
	return w.w.Errors
}

// sync makes the watched folders the given ones. A folder that now is
// another one (a symlinked folder swapped, or removed and created again)
// is watched again, since inotify watches the old one.
func (w *watches) sync(want []string) {
	if w.w == nil {
		return
	}
	keep := make(map[string]bool, len(want))
	for _, d := range want {
		if keep[d] {
			continue
		}
		keep[d] = true
		old, watched := w.dirs[d]
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() {
			if watched {
				_ = w.w.Remove(d)
				delete(w.dirs, d)
			}
			continue
		}
		if watched && os.SameFile(old, fi) {
			continue
		}
		if watched {
			_ = w.w.Remove(d)
			delete(w.dirs, d)
		}
		if err := w.w.Add(d); err != nil {
			if !w.failed[d] {
				w.failed[d] = true
				w.log.Warn("cannot watch folder; relying on the periodic re-check", zap.String(keyFolder, d), zap.Error(err))
			}
			continue
		}
		delete(w.failed, d)
		w.dirs[d] = fi
	}
	for d := range w.dirs {
		if !keep[d] {
			_ = w.w.Remove(d)
			delete(w.dirs, d)
		}
	}
}

// forget drops a watched folder that was itself removed or renamed (its
// watch is gone), so the next sync watches whatever is there now.
func (w *watches) forget(ev fsnotify.Event) {
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		delete(w.dirs, ev.Name)
	}
}

// debouncer turns bursts of file events into one reload.
type debouncer struct {
	timer *time.Timer
	fire  <-chan time.Time // non-nil while a reload is pending
	first time.Time        // first event of the pending burst
}

// event notes one file event at now.
func (d *debouncer) event(now time.Time) {
	switch {
	case d.fire == nil:
		d.first = now
		if d.timer == nil {
			d.timer = time.NewTimer(debounceDelay)
		} else {
			d.timer.Reset(debounceDelay)
		}
		d.fire = d.timer.C
	case now.Sub(d.first) < debounceMax:
		d.timer.Reset(debounceDelay)
	}
}

func (d *debouncer) stop() {
	if d.timer != nil {
		d.timer.Stop()
	}
}
