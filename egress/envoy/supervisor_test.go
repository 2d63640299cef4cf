package envoy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/egressd/egressd/internal/testkit"
)

func readPIDFile(t *testing.T, runDir string) int {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(runDir, PIDFile))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	return pid
}

func waitStart(t *testing.T, errc <-chan error, within time.Duration) {
	t.Helper()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Start returned %v, want nil", err)
		}
	case <-time.After(within):
		t.Fatalf("Start did not return within %v of cancel", within)
	}
}

func TestNewSupervisorChecksConfig(t *testing.T) {
	bin := fakeBinary(t, filepath.Join(t.TempDir(), "envoy"), 0o755)
	ok := SupervisorConfig{BinaryPath: bin, Bootstrap: []byte("admin: {}\n"), RunDir: t.TempDir()}
	tests := map[string]struct {
		edit    func(c *SupervisorConfig)
		wantErr string
	}{
		"ok":                {edit: func(c *SupervisorConfig) {}},
		"no binary":         {edit: func(c *SupervisorConfig) { c.BinaryPath = "" }, wantErr: "binary path is empty"},
		"missing binary":    {edit: func(c *SupervisorConfig) { c.BinaryPath += ".nope" }, wantErr: "does not exist"},
		"no bootstrap":      {edit: func(c *SupervisorConfig) { c.Bootstrap = nil }, wantErr: "bootstrap is empty"},
		"no run dir":        {edit: func(c *SupervisorConfig) { c.RunDir = "" }, wantErr: "run folder is empty"},
		"unknown log level": {edit: func(c *SupervisorConfig) { c.LogLevel = "loud" }, wantErr: `log level "loud"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			_, err := NewSupervisor(c)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("NewSupervisor: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewSupervisor error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestSupervisorArgs(t *testing.T) {
	run := t.TempDir()
	s, err := NewSupervisor(SupervisorConfig{
		BinaryPath: fakeBinary(t, filepath.Join(t.TempDir(), "envoy"), 0o755),
		Bootstrap:  []byte("x"),
		RunDir:     run,
		DrainTime:  5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(s.Args(), " ")
	want := "-c " + filepath.Join(run, BootstrapFile) + " --log-level warn --drain-time-s 5 --file-flush-interval-msec 1000 --disable-hot-restart"
	if got != want {
		t.Errorf("Args() = %q, want %q", got, want)
	}
}

// TestSupervisorKillsAfterStopTimeout uses a fake Envoy that ignores
// SIGTERM: the supervisor must SIGKILL it (and its process group) after
// StopTimeout.
func TestSupervisorKillsAfterStopTimeout(t *testing.T) {
	r := newReaper(t)
	bin := filepath.Join(t.TempDir(), "envoy")
	// The marker file (in the run folder, the child's working folder) says
	// the trap is installed.
	if err := os.WriteFile(bin, []byte("#!/bin/sh\ntrap '' TERM\n: > trapped\nsleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	run := t.TempDir()
	s, err := NewSupervisor(SupervisorConfig{
		BinaryPath: bin, Bootstrap: []byte("x"), RunDir: run,
		Logger: zaptest.NewLogger(t), StopTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	cancel, errc := runSupervisor(t, s)
	eventually(t, 5*time.Second, "fake envoy to start", func() bool { return s.PID() != 0 })
	pid := s.PID()
	r.track(t, pid)
	eventually(t, 5*time.Second, "fake envoy to ignore SIGTERM", func() bool {
		_, err := os.Stat(filepath.Join(run, "trapped"))
		return err == nil
	})

	start := time.Now()
	cancel()
	waitStart(t, errc, 300*time.Millisecond+killWait)
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("Start returned after %v, before StopTimeout: SIGTERM was not ignored?", took)
	}
	if !gone(pid) {
		t.Errorf("fake envoy %d still runs after stop", pid)
	}
	eventually(t, 2*time.Second, "the fake envoy's process group to be empty", func() bool {
		return len(groupMembers(t, pid)) == 0
	})
}

// TestSupervisorBacksOff uses a fake Envoy that exits at once: each exit is
// logged with its exit code and restarts follow with doubling backoff.
func TestSupervisorBacksOff(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "envoy")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	s, err := NewSupervisor(SupervisorConfig{
		BinaryPath: bin, Bootstrap: []byte("x"), RunDir: t.TempDir(), Logger: zap.New(core),
		RestartBackoff: 10 * time.Millisecond, MaxRestartBackoff: 40 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	cancel, errc := runSupervisor(t, s)
	eventually(t, 10*time.Second, "4 restarts", func() bool { return s.Restarts() >= 4 })
	cancel()
	waitStart(t, errc, 5*time.Second)

	exits := logs.FilterMessage("envoy exited unexpectedly").All()
	if len(exits) < 4 {
		t.Fatalf("logged %d unexpected exits, want >= 4", len(exits))
	}
	var backoffs []time.Duration
	for _, e := range exits {
		f := e.ContextMap()
		if f[keyExitCode] != int64(3) {
			t.Errorf("exit logged with exit_code %v, want 3: %v", f[keyExitCode], f)
		}
		backoffs = append(backoffs, f[keyBackoff].(time.Duration))
	}
	want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 40 * time.Millisecond}
	for i, w := range want {
		if backoffs[i] != w {
			t.Errorf("backoffs = %v, want prefix %v", backoffs, want)
			break
		}
	}
	starts := logs.FilterMessage("envoy started").All()
	if len(starts) < 5 {
		t.Fatalf("logged %d starts, want >= 5", len(starts))
	}
	for i, e := range starts {
		if got := e.ContextMap()[keyRestarts]; got != int64(i) {
			t.Errorf("start %d logged restarts=%v, want %d", i, got, i)
		}
	}
}

// TestSupervisorIgnoresForeignPIDFile: a pid file naming a live process
// that is not our Envoy must not be adopted.
func TestSupervisorIgnoresForeignPIDFile(t *testing.T) {
	r := newReaper(t)
	bin := filepath.Join(t.TempDir(), "envoy")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nsleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	run := t.TempDir()
	if err := os.WriteFile(filepath.Join(run, PIDFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := NewSupervisor(SupervisorConfig{BinaryPath: bin, Bootstrap: []byte("x"), RunDir: run, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	cancel, errc := runSupervisor(t, s)
	eventually(t, 5*time.Second, "a new process", func() bool { return s.PID() != 0 })
	pid := s.PID()
	r.track(t, pid)
	if pid == os.Getpid() {
		t.Fatal("adopted the test process")
	}
	if got := readPIDFile(t, run); got != pid {
		t.Errorf("pid file = %d, want %d", got, pid)
	}
	cancel()
	waitStart(t, errc, s.cfg.StopTimeout+killWait)
	if _, err := os.Stat(filepath.Join(run, PIDFile)); !os.IsNotExist(err) {
		t.Errorf("pid file left after stop: %v", err)
	}
}

// TestSupervisorRestartsEnvoy runs the real Envoy: SIGKILL it, and the
// supervisor starts a new one; cancel, and it is stopped.
func TestSupervisorRestartsEnvoy(t *testing.T) {
	bin := envoyBinary(t)
	r := newReaper(t)
	run := t.TempDir()
	port := testkit.FreePort(t)
	boot := testBootstrap(t, port)
	out := envoyLog(t)
	s := realEnvoySupervisor(t, bin, boot, run, out)
	cancel, errc := runSupervisor(t, s)

	eventually(t, 10*time.Second, "envoy to start", func() bool { return s.PID() != 0 })
	first := s.PID()
	r.track(t, first)
	eventually(t, 30*time.Second, "envoy admin to answer", func() bool { return adminUp(port) })
	if got, err := os.ReadFile(filepath.Join(run, BootstrapFile)); err != nil || string(got) != string(boot) {
		t.Errorf("bootstrap file = %q, %v; want the configured bootstrap", got, err)
	}
	if got := readPIDFile(t, run); got != first {
		t.Errorf("pid file = %d, want %d", got, first)
	}
	if pg, err := syscall.Getpgid(first); err != nil || pg != first {
		t.Errorf("envoy process group = %d, %v; want its own (%d)", pg, err, first)
	}

	second := killAndExpectReplacement(t, s, r, run, port, first)

	cancel()
	waitStart(t, errc, s.cfg.StopTimeout+2*time.Second)
	if !gone(second) {
		t.Errorf("envoy %d still runs after Start returned", second)
	}
	if s.PID() != 0 {
		t.Errorf("PID() = %d after stop, want 0", s.PID())
	}
	if _, err := os.Stat(filepath.Join(run, PIDFile)); !os.IsNotExist(err) {
		t.Errorf("pid file left after stop: %v", err)
	}
	if adminUp(port) {
		t.Error("admin still answers after stop")
	}
	// The bootstrap bounds downstream connections, so Envoy did not warn.
	if log, err := os.ReadFile(out.Name()); err != nil || strings.Contains(string(log), "no configured limit") {
		t.Errorf("envoy warned about unbounded downstream connections (err %v):\n%s", err, log)
	}
}

// Environment of the helper process that runs a supervisor to be SIGKILLed.
const (
	helperEnv          = "EGRESSD_ENVOY_SUPERVISOR_HELPER"
	helperBinEnv       = "EGRESSD_ENVOY_HELPER_BIN"
	helperRunDirEnv    = "EGRESSD_ENVOY_HELPER_RUN_DIR"
	helperBootstrapEnv = "EGRESSD_ENVOY_HELPER_BOOTSTRAP"
)

// TestSupervisorHelperProcess is not a test: it is the body of the helper
// process started by TestEnvoySurvivesEgressdAndIsAdopted, a stand-in for
// egressd. It supervises Envoy until it is killed.
func TestSupervisorHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	boot, err := os.ReadFile(os.Getenv(helperBootstrapEnv))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSupervisor(SupervisorConfig{
		BinaryPath: os.Getenv(helperBinEnv), Bootstrap: boot, RunDir: os.Getenv(helperRunDirEnv),
		Logger: zap.NewExample(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // bound, should the test forget us
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestEnvoySurvivesEgressdAndIsAdopted is the fail-closed requirement: a
// SIGKILLed egressd leaves Envoy serving, and the next supervisor with the
// same run folder adopts that Envoy instead of starting a second one, and
// stops it when its context ends.
func TestEnvoySurvivesEgressdAndIsAdopted(t *testing.T) {
	bin := envoyBinary(t)
	r := newReaper(t)
	run := t.TempDir()
	port := testkit.FreePort(t)
	boot := testBootstrap(t, port)
	out := envoyLog(t)
	bootFile := filepath.Join(t.TempDir(), "bootstrap.yaml")
	if err := os.WriteFile(bootFile, boot, 0o644); err != nil {
		t.Fatal(err)
	}

	helper := exec.Command(os.Args[0], "-test.run=^TestSupervisorHelperProcess$", "-test.count=1")
	helper.Env = append(os.Environ(), helperEnv+"=1", helperBinEnv+"="+bin, helperRunDirEnv+"="+run, helperBootstrapEnv+"="+bootFile)
	helper.Stdout, helper.Stderr = out, out
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	r.track(t, helper.Process.Pid)
	helperDone := make(chan struct{})
	go func() { _ = helper.Wait(); close(helperDone) }()
	t.Cleanup(func() { _ = helper.Process.Kill(); <-helperDone })

	var envoyPID int
	eventually(t, 30*time.Second, "the helper's envoy to write its pid file", func() bool {
		envoyPID = readPIDFile(t, run)
		return envoyPID != 0
	})
	r.track(t, envoyPID)
	eventually(t, 30*time.Second, "envoy admin to answer", func() bool { return adminUp(port) })

	// egressd dies the hard way: Envoy must keep running and serving.
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-helperDone:
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not die")
	}
	for range 5 {
		time.Sleep(200 * time.Millisecond)
		if gone(envoyPID) || !adminUp(port) {
			t.Fatalf("envoy %d died with its supervisor; it must keep serving its last configuration", envoyPID)
		}
	}

	s := realEnvoySupervisor(t, bin, boot, run, out)
	cancel, errc := runSupervisor(t, s)
	eventually(t, 5*time.Second, "supervisor to adopt envoy", func() bool { return s.PID() == envoyPID })
	time.Sleep(3 * adoptedPollInterval) // give a wrong supervisor time to misbehave
	if p := s.PID(); p != envoyPID {
		t.Errorf("PID() = %d, want the adopted %d", p, envoyPID)
	}
	if n := s.Restarts(); n != 0 {
		t.Errorf("Restarts() = %d, want 0", n)
	}
	bootPath := filepath.Join(run, BootstrapFile)
	if pids := envoyProcessesWith(t, bootPath); len(pids) != 1 || pids[0] != envoyPID {
		t.Errorf("envoys running with %s: %v, want only the adopted %d", bootPath, pids, envoyPID)
	}
	if !adminUp(port) {
		t.Error("adopted envoy's admin does not answer")
	}

	cancel()
	waitStart(t, errc, s.cfg.StopTimeout+2*time.Second)
	eventually(t, 2*time.Second, "adopted envoy to be gone", func() bool { return gone(envoyPID) })
	if _, err := os.Stat(filepath.Join(run, PIDFile)); !os.IsNotExist(err) {
		t.Errorf("pid file left after stop: %v", err)
	}
}

// TestSupervisorReplacesDeadAdoptedEnvoy: an Envoy started outside the
// supervisor (here by the test) is adopted through the pid file, watched by
// polling, and replaced by a new child once it dies.
func TestSupervisorReplacesDeadAdoptedEnvoy(t *testing.T) {
	bin := envoyBinary(t)
	r := newReaper(t)
	run := t.TempDir()
	port := testkit.FreePort(t)
	boot := testBootstrap(t, port)
	out := envoyLog(t)
	s := realEnvoySupervisor(t, bin, boot, run, out)

	// An Envoy left by an earlier egressd: same binary, arguments, run folder.
	if err := os.WriteFile(filepath.Join(run, BootstrapFile), boot, 0o644); err != nil {
		t.Fatal(err)
	}
	old := exec.Command(bin, s.Args()...)
	old.Stdout, old.Stderr = out, out
	old.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := old.Start(); err != nil {
		t.Fatal(err)
	}
	oldPID := old.Process.Pid
	r.track(t, oldPID)
	oldDone := make(chan struct{})
	go func() { _ = old.Wait(); close(oldDone) }()
	t.Cleanup(func() { _ = old.Process.Kill(); <-oldDone })
	if err := os.WriteFile(filepath.Join(run, PIDFile), []byte(strconv.Itoa(oldPID)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "envoy admin to answer", func() bool { return adminUp(port) })

	cancel, errc := runSupervisor(t, s)
	eventually(t, 5*time.Second, "supervisor to adopt envoy", func() bool { return s.PID() == oldPID })
	time.Sleep(3 * adoptedPollInterval)
	if p, n := s.PID(), s.Restarts(); p != oldPID || n != 0 {
		t.Fatalf("PID() = %d, Restarts() = %d; want adopted %d and 0 restarts", p, n, oldPID)
	}

	fresh := killAndExpectReplacement(t, s, r, run, port, oldPID)

	cancel()
	waitStart(t, errc, s.cfg.StopTimeout+2*time.Second)
	if !gone(fresh) {
		t.Errorf("envoy %d still runs after Start returned", fresh)
	}
}

// realEnvoySupervisor is the Supervisor of the real-Envoy tests: quick
// restarts, a generous stop timeout, Envoy's output in out.
func realEnvoySupervisor(t *testing.T, bin string, boot []byte, run string, out *os.File) *Supervisor {
	t.Helper()
	s, err := NewSupervisor(SupervisorConfig{
		BinaryPath: bin, Bootstrap: boot, RunDir: run,
		Logger: zaptest.NewLogger(t), Stdout: out, Stderr: out,
		RestartBackoff: 100 * time.Millisecond, StopTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// killAndExpectReplacement SIGKILLs Envoy old and checks that the
// supervisor starts a new one: counted as the first restart, its admin on
// port answering, its pid in run's pid file. It returns the new pid.
func killAndExpectReplacement(t *testing.T, s *Supervisor, r *reaper, run string, port, old int) int {
	t.Helper()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a new envoy", func() bool { p := s.PID(); return p != 0 && p != old })
	fresh := s.PID()
	r.track(t, fresh)
	if n := s.Restarts(); n != 1 {
		t.Errorf("Restarts() = %d, want 1", n)
	}
	eventually(t, 30*time.Second, "new envoy admin to answer", func() bool { return adminUp(port) })
	if got := readPIDFile(t, run); got != fresh {
		t.Errorf("pid file = %d after restart, want %d", got, fresh)
	}
	return fresh
}
