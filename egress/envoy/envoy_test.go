package envoy

// Helpers for tests that run the real Envoy binary.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/egressd/egressd/internal/testkit"
)

// envoyBinary is the Envoy that `make setup` installed into the repo cache
// (or ENVOY_PATH, or PATH); the test is skipped when there is none.
func envoyBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping a test that runs the real Envoy")
	}
	bin, err := Locate("", RepoCacheDir())
	if err != nil {
		t.Skipf("no Envoy binary, skipping the test that runs it (make test installs it first): %v", err)
	}
	return bin
}

// testBootstrap is a bootstrap with the admin interface on adminPort and
// the xDS cluster pointing at a closed port: Envoy starts and its admin
// answers, it just never gets listeners.
func testBootstrap(t *testing.T, adminPort int) []byte {
	t.Helper()
	y, err := BootstrapYAML(BootstrapConfig{
		NodeID:       "test",
		XDSAddress:   fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)),
		AdminAddress: fmt.Sprintf("127.0.0.1:%d", adminPort),
	})
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// adminUp reports whether Envoy's admin interface answers /server_info.
// (/ready stays 503 while the unreachable xDS server holds initialisation.)
func adminUp(port int) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/server_info", port))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"state"`)
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// envoyLog is a file that receives Envoy's output; its content is logged
// when the test fails.
func envoyLog(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "envoy.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := os.ReadFile(f.Name()); err == nil {
				t.Logf("envoy output:\n%s", out)
			}
		}
		f.Close()
	})
	return f
}

// reaper SIGKILLs, at the end of a test, every process it was told about
// that still runs: Envoys must not outlive a failed test.
type reaper struct {
	mu    sync.Mutex
	procs map[int]uint64 // pid -> start time, so a reused pid is spared
}

func newReaper(t *testing.T) *reaper {
	r := &reaper{procs: map[int]uint64{}}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for pid, start := range r.procs {
			if alive(pid, start) {
				t.Logf("killing leftover process %d", pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return r
}

func (r *reaper) track(t *testing.T, pid int) {
	t.Helper()
	st, err := readProcStat(pid)
	if err != nil {
		return // already gone
	}
	r.mu.Lock()
	r.procs[pid] = st.startTime
	r.mu.Unlock()
}

// gone reports whether pid no longer runs (or is a zombie).
func gone(pid int) bool {
	st, err := readProcStat(pid)
	return err != nil || st.state == 'Z' || st.state == 'X'
}

// runSupervisor starts s in the background; the returned cancel stops it
// and the channel yields Start's result. Cleanup cancels and waits.
func runSupervisor(t *testing.T, s *Supervisor) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		errc <- s.Start(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(s.cfg.StopTimeout + killWait + 5*time.Second):
			t.Errorf("Supervisor.Start did not return after cancel")
		}
	})
	return cancel, errc
}

// processesWhere lists the pids of processes whose /proc/<pid>/<file>
// content matches.
func processesWhere(t *testing.T, file string, match func(pid int, content []byte) bool) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), file))
		if err == nil && match(pid, raw) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// envoyProcessesWith lists the pids of running processes whose command line
// holds arg.
func envoyProcessesWith(t *testing.T, arg string) []int {
	t.Helper()
	return processesWhere(t, "cmdline", func(pid int, raw []byte) bool {
		args := strings.Split(string(raw), "\x00")
		return !gone(pid) && len(args) > 0 && filepath.Base(args[0]) == "envoy" && slices.Contains(args, arg)
	})
}

// groupMembers lists the live (not zombie) processes in process group pgid.
func groupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	return processesWhere(t, "stat", func(_ int, raw []byte) bool {
		// "pid (comm) state ppid pgrp ..."
		i := strings.LastIndexByte(string(raw), ')')
		f := strings.Fields(string(raw[i+1:]))
		return len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid)
	})
}
