package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/egressd/egressd/serviceentry"
)

// seYAML is a valid ServiceEntry ns/<name> allowing host on port 443 (TLS).
func seYAML(name, host string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: %s
  namespace: ns
spec:
  hosts: [%s]
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
`, name, host)
}

// seJSON is seYAML as JSON.
func seJSON(name, host string) string {
	return fmt.Sprintf(`{"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
 "metadata": {"name": %q, "namespace": "ns"},
 "spec": {"hosts": [%q], "resolution": "DNS", "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}]}}
`, name, host)
}

// writeFile writes data to dir/rel, creating the folders it needs.
func writeFile(t *testing.T, dir, rel, data string) {
	t.Helper()
	path := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// symlink creates the symlink dir/rel pointing to target.
func symlink(t *testing.T, target, dir, rel string) {
	t.Helper()
	if err := os.Symlink(target, filepath.Join(dir, rel)); err != nil {
		t.Fatal(err)
	}
}

// hostNames returns the allowlist's host names, in its order.
func hostNames(a *serviceentry.Allowlist) []string {
	var out []string
	for _, h := range a.Hosts() {
		out = append(out, h.Name)
	}
	return out
}

// entryFiles returns the file of every entry, relative to dir.
func entryFiles(t *testing.T, dir string, a *serviceentry.Allowlist) []string {
	t.Helper()
	var out []string
	for _, e := range a.Entries() {
		out = append(out, relPath(t, dir, e.Ref.File))
	}
	return out
}

// problemFiles returns the file of every problem, relative to dir.
func problemFiles(t *testing.T, dir string, a *serviceentry.Allowlist) []string {
	t.Helper()
	var out []string
	for _, p := range a.Problems() {
		out = append(out, relPath(t, dir, p.Ref.File))
	}
	return out
}

func relPath(t *testing.T, dir, path string) string {
	t.Helper()
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.ToSlash(rel)
}

func TestLoadDirFiles(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "config")
	writeFile(t, dir, "a.yaml", seYAML("a", "a.example.com"))
	writeFile(t, dir, "sub/b.yml", seYAML("b", "b.example.com"))
	writeFile(t, dir, "sub/deeper/c.json", seJSON("c", "c.example.com"))
	writeFile(t, dir, "UPPER.YAML", seYAML("upper", "upper.example.com"))
	writeFile(t, dir, "empty.yaml", "")
	// Skipped: hidden files and folders, other extensions.
	writeFile(t, dir, ".hidden.yaml", seYAML("hidden", "hidden.example.com"))
	writeFile(t, dir, ".git/d.yaml", seYAML("git", "git.example.com"))
	writeFile(t, dir, "sub/.cache/e.yaml", seYAML("cache", "cache.example.com"))
	writeFile(t, dir, "notes.txt", seYAML("txt", "txt.example.com"))
	writeFile(t, dir, "a.yaml.bak", seYAML("bak", "bak.example.com"))
	writeFile(t, dir, "README", seYAML("readme", "readme.example.com"))
	// Followed: symlinks to a file and to a folder outside dir.
	writeFile(t, root, "outside/linked.yaml", seYAML("linked", "linked.example.com"))
	writeFile(t, root, "outside-dir/m.yaml", seYAML("m", "m.example.com"))
	symlink(t, "../outside/linked.yaml", dir, "linked.yaml")
	symlink(t, filepath.Join(root, "outside-dir"), dir, "linked-dir")
	// Ignored: a dangling link; read once: folders reached again by a loop.
	symlink(t, "nowhere.yaml", dir, "dangling.yaml")
	symlink(t, ".", dir, "loop")
	symlink(t, "..", dir, "sub/up")

	a, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	wantHosts := []string{"a.example.com", "b.example.com", "c.example.com", "linked.example.com", "m.example.com", "upper.example.com"}
	if d := cmp.Diff(wantHosts, hostNames(a)); d != "" {
		t.Errorf("hosts (-want +got):\n%s", d)
	}
	wantFiles := []string{"a.yaml", "sub/b.yml", "sub/deeper/c.json", "linked.yaml", "linked-dir/m.yaml", "UPPER.YAML"}
	if d := cmp.Diff(wantFiles, entryFiles(t, dir, a)); d != "" {
		t.Errorf("entry files (-want +got):\n%s", d)
	}
	if len(a.Problems()) != 0 {
		t.Errorf("unexpected problems:\n%v", a.Problems())
	}
}

// httpSEYAML is a valid ServiceEntry ns/<name> allowing host on port 80
// (HTTP), where the gateway can originate TLS.
func httpSEYAML(name, host string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: %s
  namespace: ns
spec:
  hosts: [%s]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
`, name, host)
}

// drYAML is a DestinationRule ns/<name> for host with the given tls block
// (YAML flow mapping content).
func drYAML(name, host, tls string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: %s
  namespace: ns
spec:
  host: %s
  trafficPolicy:
    tls: {%s}
`, name, host, tls)
}

// originations lists "host port: MODE rule" for every host port with TLS.
func originations(a *serviceentry.Allowlist) []string {
	var out []string
	for _, h := range a.Hosts() {
		for _, p := range h.Ports {
			if p.TLS != nil {
				out = append(out, fmt.Sprintf("%s %d: %s %s", h.Name, p.Number, p.TLS.Mode, p.TLS.Rule))
			}
		}
	}
	return out
}

// TestLoadDirDestinationRules: rules apply across files, in one file with
// ServiceEntries or their own; their problems name their files.
func TestLoadDirDestinationRules(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "partner.yaml", httpSEYAML("partner", "api.partner.example")+"---\n"+
		drYAML("partner", "api.partner.example", "mode: MUTUAL, credentialName: partner"))
	writeFile(t, dir, "entries/other.yaml", httpSEYAML("other", "other.example.com"))
	writeFile(t, dir, "rules/other.yaml", drYAML("other", "other.example.com", "mode: SIMPLE"))
	writeFile(t, dir, "rules/unused.yaml", drYAML("unused", "unused.example.com", "mode: SIMPLE"))
	writeFile(t, dir, "rules/broken.yaml", drYAML("broken", "other.example.com", "mode: MUTUAL"))

	a, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"api.partner.example 80: MUTUAL ns/partner", "other.example.com 80: SIMPLE ns/other"}
	if d := cmp.Diff(want, originations(a)); d != "" {
		t.Errorf("originations (-want +got):\n%s", d)
	}
	var rules []string
	for _, r := range a.Rules() {
		rules = append(rules, r.Ref.String()+" "+relPath(t, dir, r.Ref.File))
	}
	if d := cmp.Diff([]string{"ns/other rules/other.yaml", "ns/partner partner.yaml", "ns/unused rules/unused.yaml"}, rules); d != "" {
		t.Errorf("rules (-want +got):\n%s", d)
	}
	var problems []string
	for _, p := range a.Problems() {
		problems = append(problems, string(p.Severity)+" "+relPath(t, dir, p.Ref.File)+" "+p.Ref.String()+" "+p.Field)
	}
	wantProblems := []string{
		"error rules/broken.yaml ns/broken spec.trafficPolicy.tls",
		"warning rules/unused.yaml ns/unused spec.host",
	}
	if d := cmp.Diff(wantProblems, problems); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}
}

func TestLoadDirEmpty(t *testing.T) {
	a, err := LoadDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Hosts()) != 0 || len(a.Entries()) != 0 || len(a.Problems()) != 0 || a.Version() == "" {
		t.Errorf("empty dir: %d hosts, %d entries, %d problems, version %q; want none and a version",
			len(a.Hosts()), len(a.Entries()), len(a.Problems()), a.Version())
	}
}

func TestLoadDirProblems(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "mixed.yaml", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: good
  namespace: ns
spec:
  hosts: [good.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: bad
  namespace: ns
spec:
  hosts: [bad.example.com]
  ports: [{number: 0, name: tls, protocol: TLS}]
`)
	writeFile(t, dir, "other.yaml", seYAML("other", "other.example.com"))
	writeFile(t, dir, "sub/broken.yaml", "apiVersion: networking.istio.io/v1\nkind: [\n")

	a, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"good.example.com", "other.example.com"}, hostNames(a)); d != "" {
		t.Errorf("hosts (-want +got):\n%s", d)
	}
	var got []string
	for _, p := range a.Problems() {
		got = append(got, string(p.Severity)+": "+p.Error())
	}
	want := []string{
		"error: " + filepath.Join(dir, "mixed.yaml") + ":10: ServiceEntry ns/bad: spec.ports[0].number: missing; set the port clients connect to (1-65535)",
		"error: " + filepath.Join(dir, "sub/broken.yaml") + ":2: invalid YAML: did not find expected node content; nothing after this point in the file was read",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}
}

func TestLoadDirUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode")
	}
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", seYAML("a", "a.example.com"))
	writeFile(t, dir, "secret.yaml", seYAML("secret", "secret.example.com"))
	if err := os.Chmod(filepath.Join(dir, "secret.yaml"), 0); err != nil {
		t.Fatal(err)
	}
	a, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"a.example.com"}, hostNames(a)); d != "" {
		t.Errorf("hosts (-want +got):\n%s", d)
	}
	path := filepath.Join(dir, "secret.yaml")
	want := []string{"error: " + path + ": reading file: open " + path + ": permission denied"}
	var got []string
	for _, p := range a.Problems() {
		got = append(got, string(p.Severity)+": "+p.Error())
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}
}

func TestLoadDirErrors(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "a.yaml")
	writeFile(t, root, "a.yaml", seYAML("a", "a.example.com"))
	missing := filepath.Join(root, "missing")
	tests := map[string]struct {
		dir      string
		want     string
		notExist bool
	}{
		"missing": {dir: missing, want: "config dir: stat " + missing + ": no such file or directory", notExist: true},
		"a file":  {dir: file, want: "config dir " + file + ": not a directory"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			a, err := LoadDir(tt.dir)
			if err == nil {
				t.Fatalf("LoadDir(%s) = %d hosts, want an error", tt.dir, len(a.Hosts()))
			}
			if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			if errors.Is(err, fs.ErrNotExist) != tt.notExist {
				t.Errorf("errors.Is(%v, fs.ErrNotExist) = %v, want %v", err, !tt.notExist, tt.notExist)
			}
		})
	}
}

// Timeouts of the watcher tests. An update is due within updateTimeout;
// quietPeriod is how long a change that must not publish is watched.
const (
	updateTimeout = time.Second
	quietPeriod   = 500 * time.Millisecond
)

// startDir starts a Dir on path and returns the channel of its updates.
// The test's cleanup cancels it and checks that Start returned nil.
func startDir(t *testing.T, path string) <-chan *serviceentry.Allowlist {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan *serviceentry.Allowlist, 16)
	d := &Dir{
		Path:     path,
		Debounce: 50 * time.Millisecond,
		Log:      zaptest.NewLogger(t),
		OnUpdate: func(ctx context.Context, a *serviceentry.Allowlist) {
			select {
			case updates <- a:
			case <-ctx.Done():
			}
		},
	}
	done := make(chan error, 1)
	go func() { done <- d.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start returned %v after cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Start did not return after cancel")
		}
	})
	return updates
}

// nextUpdate waits up to updateTimeout for the next update.
func nextUpdate(t *testing.T, updates <-chan *serviceentry.Allowlist) *serviceentry.Allowlist {
	t.Helper()
	select {
	case a := <-updates:
		return a
	case <-time.After(updateTimeout):
		t.Fatalf("no update within %v", updateTimeout)
		return nil
	}
}

// noUpdate fails if an update arrives within quietPeriod.
func noUpdate(t *testing.T, updates <-chan *serviceentry.Allowlist) {
	t.Helper()
	select {
	case a := <-updates:
		t.Errorf("unexpected update: hosts %v, %d problems", hostNames(a), len(a.Problems()))
	case <-time.After(quietPeriod):
	}
}

// configMapUpdate replaces the files of a ConfigMap-style folder atomically,
// as the kubelet does: a new timestamped folder, a "..data_tmp" symlink to
// it renamed over "..data", then the old folder removed. The visible files
// are symlinks "name -> ..data/name", created by the first update.
func configMapUpdate(t *testing.T, dir, stamp string, files map[string]string) {
	t.Helper()
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	for name, data := range files {
		writeFile(t, dir, filepath.Join(stamp, name), data)
	}
	symlink(t, stamp, dir, "..data_tmp")
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if _, err := os.Lstat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			symlink(t, filepath.Join("..data", name), dir, name)
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDirStartUpdates(t *testing.T) {
	// step is one change to the folder and the update it must publish.
	type step struct {
		name string
		do   func(t *testing.T, dir string)
		// wantHosts are the hosts of the update that do triggers; nil means
		// do must trigger none.
		wantHosts []string
		// wantProblems are the files, relative to the folder, that the
		// update's problems name.
		wantProblems []string
	}
	writeA := func(t *testing.T, dir string) { writeFile(t, dir, "a.yaml", seYAML("a", "a.example.com")) }
	tests := map[string]struct {
		setup       func(t *testing.T, dir string)
		wantInitial []string
		steps       []step
	}{
		"new file": {
			setup:       writeA,
			wantInitial: []string{"a.example.com"},
			steps: []step{{
				name:      "write b.yaml",
				do:        func(t *testing.T, dir string) { writeFile(t, dir, "b.yaml", seYAML("b", "b.example.com")) },
				wantHosts: []string{"a.example.com", "b.example.com"},
			}},
		},
		"unchanged content": {
			setup:       writeA,
			wantInitial: []string{"a.example.com"},
			steps: []step{
				{name: "rewrite a.yaml identically", do: writeA},
				{name: "chmod a.yaml", do: func(t *testing.T, dir string) {
					if err := os.Chmod(filepath.Join(dir, "a.yaml"), 0o600); err != nil {
						t.Fatal(err)
					}
				}},
				{name: "write a file that is not config", do: func(t *testing.T, dir string) {
					writeFile(t, dir, "notes.txt", seYAML("txt", "txt.example.com"))
				}},
				{name: "write a hidden file", do: func(t *testing.T, dir string) {
					writeFile(t, dir, ".a.yaml.swp", seYAML("swp", "swp.example.com"))
				}},
			},
		},
		"edit and remove": {
			setup: func(t *testing.T, dir string) {
				writeA(t, dir)
				writeFile(t, dir, "b.yaml", seYAML("b", "b.example.com"))
			},
			wantInitial: []string{"a.example.com", "b.example.com"},
			steps: []step{
				{
					name:      "edit a.yaml",
					do:        func(t *testing.T, dir string) { writeFile(t, dir, "a.yaml", seYAML("a", "a2.example.com")) },
					wantHosts: []string{"a2.example.com", "b.example.com"},
				},
				{
					name: "remove b.yaml",
					do: func(t *testing.T, dir string) {
						if err := os.Remove(filepath.Join(dir, "b.yaml")); err != nil {
							t.Fatal(err)
						}
					},
					wantHosts: []string{"a2.example.com"},
				},
			},
		},
		"new invalid file": {
			setup:       writeA,
			wantInitial: []string{"a.example.com"},
			steps: []step{
				{
					name:         "write bad.yaml",
					do:           func(t *testing.T, dir string) { writeFile(t, dir, "bad.yaml", seYAML("bad", "'*'")) },
					wantHosts:    []string{"a.example.com"},
					wantProblems: []string{"bad.yaml"},
				},
				{
					name:      "fix bad.yaml",
					do:        func(t *testing.T, dir string) { writeFile(t, dir, "bad.yaml", seYAML("bad", "bad.example.com")) },
					wantHosts: []string{"a.example.com", "bad.example.com"},
				},
			},
		},
		"new subfolder": {
			setup:       writeA,
			wantInitial: []string{"a.example.com"},
			steps: []step{
				{
					name:      "write sub/deeper/c.yaml",
					do:        func(t *testing.T, dir string) { writeFile(t, dir, "sub/deeper/c.yaml", seYAML("c", "c.example.com")) },
					wantHosts: []string{"a.example.com", "c.example.com"},
				},
				{
					// Only a watch on the new folder sees this.
					name:      "write sub/deeper/d.yaml",
					do:        func(t *testing.T, dir string) { writeFile(t, dir, "sub/deeper/d.yaml", seYAML("d", "d.example.com")) },
					wantHosts: []string{"a.example.com", "c.example.com", "d.example.com"},
				},
			},
		},
		"ConfigMap atomic update": {
			setup: func(t *testing.T, dir string) {
				configMapUpdate(t, dir, "..2026_01_01_00_00_00.000000001", map[string]string{"se.yaml": seYAML("se", "v1.example.com")})
			},
			wantInitial: []string{"v1.example.com"},
			steps: []step{
				{
					name: "swap ..data",
					do: func(t *testing.T, dir string) {
						configMapUpdate(t, dir, "..2026_01_01_00_01_00.000000002", map[string]string{"se.yaml": seYAML("se", "v2.example.com")})
					},
					wantHosts: []string{"v2.example.com"},
				},
				{
					name: "swap ..data with a new key",
					do: func(t *testing.T, dir string) {
						configMapUpdate(t, dir, "..2026_01_01_00_02_00.000000003", map[string]string{
							"se.yaml":    seYAML("se", "v3.example.com"),
							"other.yaml": seYAML("other", "other.example.com"),
						})
					},
					wantHosts: []string{"other.example.com", "v3.example.com"},
				},
			},
		},
		"folder removed": {
			setup:       writeA,
			wantInitial: []string{"a.example.com"},
			steps: []step{{
				// The reload fails; the last snapshot stays.
				name: "remove the folder",
				do: func(t *testing.T, dir string) {
					if err := os.RemoveAll(dir); err != nil {
						t.Fatal(err)
					}
				},
			}},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "config")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, dir)
			updates := startDir(t, dir)
			first := nextUpdate(t, updates)
			if d := cmp.Diff(tt.wantInitial, hostNames(first)); d != "" {
				t.Fatalf("initial hosts (-want +got):\n%s", d)
			}
			for _, s := range tt.steps {
				s.do(t, dir)
				if s.wantHosts == nil {
					noUpdate(t, updates)
					continue
				}
				a := nextUpdate(t, updates)
				if d := cmp.Diff(s.wantHosts, hostNames(a)); d != "" {
					t.Errorf("%s: hosts (-want +got):\n%s", s.name, d)
				}
				if d := cmp.Diff(s.wantProblems, problemFiles(t, dir, a)); d != "" {
					t.Errorf("%s: problem files (-want +got):\n%s", s.name, d)
				}
			}
			// Each change publishes once.
			noUpdate(t, updates)
		})
	}
}

// TestDirStartRuleChanges: a change to DestinationRules alone publishes a
// new snapshot with a new version, as the gateway's TLS changes.
func TestDirStartRuleChanges(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "se.yaml", httpSEYAML("api", "api.example.com"))
	updates := startDir(t, dir)
	first := nextUpdate(t, updates)
	if got := originations(first); got != nil {
		t.Fatalf("initial originations %v, want none", got)
	}
	versions := map[string]bool{first.Version(): true}
	steps := []struct {
		name string
		do   func(t *testing.T)
		want []string
	}{
		{"add a rule", func(t *testing.T) { writeFile(t, dir, "dr.yaml", drYAML("api", "api.example.com", "mode: SIMPLE")) },
			[]string{"api.example.com 80: SIMPLE ns/api"}},
		{"change its mode", func(t *testing.T) {
			writeFile(t, dir, "dr.yaml", drYAML("api", "api.example.com", "mode: MUTUAL, credentialName: api"))
		}, []string{"api.example.com 80: MUTUAL ns/api"}},
		{"change its credential", func(t *testing.T) {
			writeFile(t, dir, "dr.yaml", drYAML("api", "api.example.com", "mode: MUTUAL, credentialName: api-2"))
		}, []string{"api.example.com 80: MUTUAL ns/api"}},
		{"remove it", func(t *testing.T) {
			if err := os.Remove(filepath.Join(dir, "dr.yaml")); err != nil {
				t.Fatal(err)
			}
		}, nil},
	}
	for _, s := range steps {
		s.do(t)
		a := nextUpdate(t, updates)
		if d := cmp.Diff(s.want, originations(a)); d != "" {
			t.Errorf("%s: originations (-want +got):\n%s", s.name, d)
		}
		if s.want != nil && versions[a.Version()] {
			t.Errorf("%s: version %s was published before", s.name, a.Version())
		}
		versions[a.Version()] = true
	}
	if len(versions) != 4 {
		t.Errorf("%d versions, want 4 (removing the rule returns to the first)", len(versions))
	}
	noUpdate(t, updates)
}

func TestDirStartMissingFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	called := false
	d := &Dir{Path: dir, Log: zap.NewNop(), OnUpdate: func(context.Context, *serviceentry.Allowlist) { called = true }}
	done := make(chan error, 1)
	go func() { done <- d.Start(context.Background()) }()
	select {
	case err := <-done:
		want := "config dir: stat " + dir + ": no such file or directory"
		if err == nil || err.Error() != want {
			t.Errorf("Start = %v, want %q", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return")
	}
	if called {
		t.Error("OnUpdate was called")
	}
}

func TestDirStartCancel(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", seYAML("a", "a.example.com"))
	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan *serviceentry.Allowlist, 1)
	d := &Dir{Path: dir, Log: zap.NewNop(), OnUpdate: func(_ context.Context, a *serviceentry.Allowlist) { updates <- a }}
	done := make(chan error, 1)
	go func() { done <- d.Start(ctx) }()
	if a := nextUpdate(t, updates); len(a.Hosts()) != 1 {
		t.Errorf("first update: hosts %v, want a.example.com", hostNames(a))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start = %v after cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return after cancel")
	}
}

// TestDirResyncFindsARecreatedFolder: the folder itself removed and made
// again delivers no event to the old watch; the periodic resync notices.
func TestDirResyncFindsARecreatedFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "a.yaml", seYAML("a", "a.example.com"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	updates := make(chan *serviceentry.Allowlist, 16)
	d := &Dir{Path: dir, Debounce: 20 * time.Millisecond, Resync: 500 * time.Millisecond, Log: zaptest.NewLogger(t),
		OnUpdate: func(_ context.Context, a *serviceentry.Allowlist) { updates <- a }}
	go func() { _ = d.Start(ctx) }()
	nextUpdate(t, updates)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	// Let the removal's reload run (and fail) while the folder is gone, so
	// its watch is lost; nothing observable marks that moment.
	time.Sleep(150 * time.Millisecond)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "b.yaml", seYAML("b", "b.example.com"))
	deadline := time.After(3 * time.Second)
	for {
		select {
		case a := <-updates:
			if d := cmp.Diff([]string{"b.example.com"}, hostNames(a)); d == "" {
				return
			}
		case <-deadline:
			t.Fatal("the recreated folder's content was never published")
		}
	}
}
