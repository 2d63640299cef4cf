package envoy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeBinary writes an empty file with the given mode and returns its path.
func fakeBinary(t *testing.T, path string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func cachedEnvoy(cache, version string) string {
	return filepath.Join(cache, "envoy-"+version, "envoy", "_bin", "envoy")
}

func TestLocate(t *testing.T) {
	dir := t.TempDir()
	flagBin := fakeBinary(t, filepath.Join(dir, "flag", "envoy"), 0o755)
	envBin := fakeBinary(t, filepath.Join(dir, "env", "envoy"), 0o755)
	pathBin := fakeBinary(t, filepath.Join(dir, "path", "envoy"), 0o755)
	noExec := fakeBinary(t, filepath.Join(dir, "noexec", "envoy"), 0o644)

	cache := filepath.Join(dir, "cache")
	fakeBinary(t, cachedEnvoy(cache, "1.9.0"), 0o755)
	newest := fakeBinary(t, cachedEnvoy(cache, "1.40.0"), 0o755)
	fakeBinary(t, cachedEnvoy(cache, "1.38.2"), 0o755)
	// Not versions, or no binary: ignored.
	fakeBinary(t, filepath.Join(cache, "envoy-latest", "envoy", "_bin", "envoy"), 0o755)
	fakeBinary(t, filepath.Join(cache, ".envoy-9.9.9.tmp.123", "envoy", "_bin", "envoy"), 0o755)
	if err := os.MkdirAll(filepath.Join(cache, "envoy-2.0.0"), 0o755); err != nil {
		t.Fatal(err)
	}

	brokenCache := filepath.Join(dir, "broken-cache")
	brokenNewest := fakeBinary(t, cachedEnvoy(brokenCache, "1.40.0"), 0o644)

	tests := map[string]struct {
		flag, env, cache, path string
		want                   string
		wantErr                string // substring
	}{
		"flag wins":                   {flag: flagBin, env: envBin, cache: cache, path: filepath.Dir(pathBin), want: flagBin},
		"env before cache":            {env: envBin, cache: cache, path: filepath.Dir(pathBin), want: envBin},
		"cache newest version":        {cache: cache, path: filepath.Dir(pathBin), want: newest},
		"PATH last":                   {cache: filepath.Join(dir, "no-cache"), path: filepath.Dir(pathBin), want: pathBin},
		"no cache dir given":          {path: filepath.Dir(pathBin), want: pathBin},
		"nothing found":               {cache: filepath.Join(dir, "no-cache"), path: filepath.Join(dir, "empty"), wantErr: "run `make setup` (scripts/setup-envoy.sh) or pass --envoy-path / set ENVOY_PATH"},
		"flag not executable":         {flag: noExec, path: filepath.Dir(pathBin), wantErr: noExec + " (from --envoy-path) is not executable"},
		"env not executable":          {env: noExec, path: filepath.Dir(pathBin), wantErr: noExec + " (from $ENVOY_PATH) is not executable"},
		"flag missing, no fallback":   {flag: filepath.Join(dir, "nope"), env: envBin, wantErr: filepath.Join(dir, "nope") + " (from --envoy-path) does not exist"},
		"flag is a folder":            {flag: dir, wantErr: dir + " (from --envoy-path) is not a regular file"},
		"cache newest not executable": {cache: brokenCache, path: filepath.Dir(pathBin), wantErr: brokenNewest + " (from setup cache) is not executable"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv(PathEnv, tc.env)
			t.Setenv("PATH", tc.path)
			got, err := Locate(tc.flag, tc.cache)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Locate() = %q, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Locate() error: %v", err)
			}
			if got != tc.want {
				t.Errorf("Locate() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLocateRelativeFlagIsMadeAbsolute(t *testing.T) {
	dir := t.TempDir()
	fakeBinary(t, filepath.Join(dir, "envoy"), 0o755)
	t.Chdir(dir)
	got, err := Locate("./envoy", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "envoy"); got != want {
		t.Errorf("Locate(./envoy) = %q, want %q", got, want)
	}
}

func TestParseVersion(t *testing.T) {
	tests := map[string]struct {
		in   string
		want []int
		ok   bool
	}{
		"three parts": {"1.40.0", []int{1, 40, 0}, true},
		"two parts":   {"1.9", []int{1, 9}, true},
		"word":        {"latest", nil, false},
		"empty part":  {"1..0", nil, false},
		"suffix":      {"1.40.0-dev", nil, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := parseVersion(tc.in)
			if ok != tc.ok || (ok && !slices.Equal(got, tc.want)) {
				t.Errorf("parseVersion(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestRepoCacheDir(t *testing.T) {
	got := RepoCacheDir()
	if got == "" {
		t.Fatal("RepoCacheDir() is empty inside the source tree")
	}
	root := filepath.Dir(got)
	if _, err := os.Stat(filepath.Join(root, "scripts", "setup-envoy.sh")); err != nil {
		t.Errorf("RepoCacheDir() = %q, not next to scripts/setup-envoy.sh: %v", got, err)
	}

	t.Chdir(t.TempDir())
	if got := RepoCacheDir(); got != "" {
		t.Errorf("RepoCacheDir() outside a checkout = %q, want empty", got)
	}
}
