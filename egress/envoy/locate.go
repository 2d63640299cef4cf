package envoy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// PathEnv is the environment variable Locate reads after the flag.
const PathEnv = "ENVOY_PATH"

// errNotFound is what Locate says when no Envoy is anywhere.
var errNotFound = errors.New("envoy binary not found: run `make setup` (scripts/setup-envoy.sh) or pass --envoy-path / set ENVOY_PATH")

// Locate finds the Envoy binary and returns its absolute path. It looks, in
// order, at:
//
//  1. flagPath, when not empty (the --envoy-path flag);
//  2. $ENVOY_PATH, when set;
//  3. cacheDir, the cache scripts/setup-envoy.sh installs into
//     (<cacheDir>/envoy-<version>/envoy/_bin/envoy, highest version first),
//     when cacheDir is not empty (see RepoCacheDir);
//  4. "envoy" on $PATH.
//
// A path given by the flag or the environment must exist and be executable;
// Locate does not fall back to the next place when it does not, so a typo
// is reported instead of silently running another Envoy. The same holds for
// the newest Envoy in the cache.
func Locate(flagPath, cacheDir string) (string, error) {
	if flagPath != "" {
		return checkExecutable(flagPath, "--envoy-path")
	}
	if p := os.Getenv(PathEnv); p != "" {
		return checkExecutable(p, "$"+PathEnv)
	}
	if cacheDir != "" {
		p, err := newestCached(cacheDir)
		if err != nil {
			return "", err
		}
		if p != "" {
			return checkExecutable(p, "setup cache")
		}
	}
	p, err := exec.LookPath("envoy")
	if err == nil {
		return checkExecutable(p, "$PATH")
	}
	if errors.Is(err, exec.ErrDot) {
		return "", fmt.Errorf("envoy found only in the current folder (%s), which is not trusted: %w", p, errNotFound)
	}
	return "", errNotFound
}

// checkExecutable returns the absolute path of p when it is an executable
// regular file (symlinks followed).
func checkExecutable(p, source string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("envoy path %q (from %s): %w", p, source, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("envoy path %s (from %s) does not exist; run `make setup` (scripts/setup-envoy.sh) or fix the path", abs, source)
		}
		return "", fmt.Errorf("envoy path %s (from %s): %w", abs, source, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("envoy path %s (from %s) is not a regular file", abs, source)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("envoy path %s (from %s) is not executable; chmod +x it or rerun scripts/setup-envoy.sh", abs, source)
	}
	return abs, nil
}

// newestCached returns the Envoy of the highest version installed under
// cacheDir by scripts/setup-envoy.sh, or "" when there is none.
func newestCached(cacheDir string) (string, error) {
	entries, err := os.ReadDir(cacheDir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("envoy cache %s: %w", cacheDir, err)
	}
	type cached struct {
		version []int
		path    string
	}
	var found []cached
	for _, e := range entries {
		v, ok := strings.CutPrefix(e.Name(), "envoy-")
		if !ok || !e.IsDir() {
			continue
		}
		version, ok := parseVersion(v)
		if !ok {
			continue
		}
		p := filepath.Join(cacheDir, e.Name(), "envoy", "_bin", "envoy")
		if _, err := os.Stat(p); err != nil {
			continue
		}
		found = append(found, cached{version, p})
	}
	if len(found) == 0 {
		return "", nil
	}
	newest := slices.MaxFunc(found, func(a, b cached) int { return slices.Compare(a.version, b.version) })
	return newest.path, nil
}

// parseVersion parses "1.40.0" into [1 40 0].
func parseVersion(s string) ([]int, bool) {
	parts := strings.Split(s, ".")
	v := make([]int, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, false
		}
		v = append(v, n)
	}
	return v, true
}

// RepoCacheDir returns the .cache folder of the egressd source tree that
// contains the working directory (found by walking up to the folder holding
// scripts/setup-envoy.sh and go.mod), or "" when not run from a checkout.
// It lets `go run`, `make run` and tests find the Envoy that `make setup`
// installed.
func RepoCacheDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if isFile(filepath.Join(dir, "go.mod")) && isFile(filepath.Join(dir, "scripts", "setup-envoy.sh")) {
			return filepath.Join(dir, ".cache")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
