package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/egressd/egressd/serviceentry"
)

// LoadDir reads every *.yaml, *.yml and *.json file below dir (hidden files
// and folders skipped, symlinks followed as Kubernetes ConfigMap mounts
// need) and compiles the ServiceEntries, DestinationRules,
// AuthorizationPolicies and PeerAuthentications they hold into one
// Allowlist. Unreadable or invalid files
// become Problems in the snapshot; only a missing or unreadable dir itself
// is an error.
func LoadDir(dir string) (*serviceentry.Allowlist, error) {
	files, err := listFiles(dir)
	if err != nil {
		return nil, err
	}
	var config serviceentry.Config
	var problems []serviceentry.Problem
	for _, f := range files {
		data, err := serviceentry.ReadFile(f)
		if err != nil {
			problems = append(problems, serviceentry.ReadProblem(f, err))
			continue
		}
		c, ps := serviceentry.ParseConfig(f, data)
		config.Add(c)
		problems = append(problems, ps...)
	}
	return serviceentry.CompileConfig(config, problems), nil
}

// listFiles returns the config files below dir, sorted.
func listFiles(dir string) ([]string, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("config dir: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("config dir %s: not a directory", dir)
	}
	var files []string
	err = walk(dir, func(path string, isDir bool) {
		if !isDir && isConfigFile(path) {
			files = append(files, path)
		}
	})
	sort.Strings(files)
	return files, err
}

// walk visits dir recursively, following symlinks to files and folders,
// skipping hidden names ("..data" of ConfigMap mounts is reached through
// the visible symlinks instead). A folder reached twice (a symlink loop, or
// two links to one folder) is visited once, under the first path in name
// order.
func walk(dir string, visit func(path string, isDir bool)) error {
	return walkDir(dir, map[string]bool{}, visit)
}

// walkDir is walk with the real paths of the folders visited so far.
func walkDir(dir string, seen map[string]bool, visit func(path string, isDir bool)) error {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		if seen[real] {
			return nil
		}
		seen[real] = true
	}
	visit(dir, true)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("config dir: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		info, err := os.Stat(path) // follows symlinks
		if err != nil {
			continue // a dangling link, or gone meanwhile
		}
		if info.IsDir() {
			if err := walkDir(path, seen, visit); err != nil {
				return err
			}
			continue
		}
		visit(path, false)
	}
	return nil
}

func isConfigFile(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// Dir watches a folder and publishes a new Allowlist whenever its files
// change. A reload that fails keeps the previous snapshot in place.
type Dir struct {
	// Path is the folder to read.
	Path string
	// Debounce groups bursts of file events (editors write several) into
	// one reload. Default 100 ms.
	Debounce time.Duration
	// Resync reloads the folder this often even without file events, a
	// safety net for events the watcher cannot deliver (the folder itself
	// removed and recreated, an overflowing event queue). An unchanged
	// folder publishes nothing. Default 30 s.
	Resync time.Duration
	// Log receives reload and problem reports.
	Log *zap.Logger
	// OnUpdate is called with every newly loaded snapshot, first on Start,
	// then after each change whose content differs from the previous one.
	OnUpdate func(context.Context, *serviceentry.Allowlist)
}

// Start loads the folder, calls OnUpdate, then watches until ctx ends. It
// returns an error if the first load fails.
func (d *Dir) Start(ctx context.Context) error {
	if d.Debounce <= 0 {
		d.Debounce = 100 * time.Millisecond
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Resync <= 0 {
		d.Resync = 30 * time.Second
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", d.Path, err)
	}
	defer w.Close()
	watched := map[string]bool{}
	d.syncWatches(w, watched)

	last, err := d.reload(ctx, "")
	if err != nil {
		return err
	}
	var timer <-chan time.Time
	resync := time.NewTicker(d.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-resync.C:
			if timer == nil {
				timer = time.After(0)
			}
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file watcher closed")
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			d.Log.Debug("config change", zap.String("file", ev.Name), zap.String("op", ev.Op.String()))
			timer = time.After(d.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("file watcher closed")
			}
			d.Log.Warn("file watcher error; reloading", zap.Error(err))
			timer = time.After(d.Debounce)
		case <-timer:
			timer = nil
			d.syncWatches(w, watched)
			if v, err := d.reload(ctx, last); err != nil {
				d.Log.Error("reload failed; keeping the previous allowlist", zap.String("dir", d.Path), zap.Error(err))
			} else {
				last = v
			}
		}
	}
}

// reload loads the folder and publishes it unless nothing changed since the
// snapshot whose key is last.
func (d *Dir) reload(ctx context.Context, last string) (string, error) {
	a, err := LoadDir(d.Path)
	if err != nil {
		return last, err
	}
	for _, p := range a.Problems() {
		if p.Severity == serviceentry.SeverityError {
			d.Log.Error("invalid resource skipped", zap.String("problem", p.Error()), zap.String("file", p.Ref.File),
				zap.String("resource", p.Ref.String()), zap.String("field", p.Field))
		} else {
			d.Log.Warn("resource warning", zap.String("problem", p.Error()), zap.String("file", p.Ref.File))
		}
	}
	key := snapshotKey(a)
	if key == last {
		d.Log.Debug("config unchanged", zap.String("version", a.Version()))
		return last, nil
	}
	d.Log.Info("allowlist loaded", zap.String("dir", d.Path), zap.String("version", a.Version()),
		zap.Int("serviceentries", len(a.Entries())), zap.Int("destinationrules", len(a.Rules())), zap.Int("hosts", len(a.Hosts())),
		zap.Int("problems", len(a.Problems())))
	if d.OnUpdate != nil {
		d.OnUpdate(ctx, a)
	}
	return key, nil
}

// snapshotKey changes when the compiled content or the problems change: a
// newly broken file is news even when the allowlist stays the same.
func snapshotKey(a *serviceentry.Allowlist) string {
	var b strings.Builder
	b.WriteString(a.Version())
	for _, p := range a.Problems() {
		b.WriteString("\n")
		b.WriteString(p.Error())
	}
	return b.String()
}

// syncWatches watches every folder below Path (fsnotify is not recursive),
// including folders created since the last sync.
func (d *Dir) syncWatches(w *fsnotify.Watcher, watched map[string]bool) {
	_ = walk(d.Path, func(path string, isDir bool) {
		if !isDir || watched[path] {
			return
		}
		if err := w.Add(path); err != nil {
			d.Log.Warn("cannot watch folder", zap.String("dir", path), zap.Error(err))
			return
		}
		watched[path] = true
	})
	for path := range watched {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			delete(watched, path) // fsnotify drops removed folders itself
		}
	}
}
