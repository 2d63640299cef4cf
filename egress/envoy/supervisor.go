package envoy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Files in SupervisorConfig.RunDir.
const (
	// BootstrapFile is the bootstrap Envoy is started with.
	BootstrapFile = "bootstrap.yaml"
	// PIDFile holds the pid of the running Envoy, so that the next egressd
	// adopts it instead of starting a second one.
	PIDFile = "envoy.pid"
)

// Supervisor defaults for empty SupervisorConfig fields.
const (
	// DefaultLogLevel is Envoy's --log-level.
	DefaultLogLevel = "warn"
	// DefaultDrainTime is Envoy's --drain-time-s (Envoy's own default is
	// 10 minutes, too long for a gateway whose listeners change often).
	DefaultDrainTime = 30 * time.Second
	// DefaultFileFlushInterval is Envoy's --file-flush-interval-msec: how
	// soon access log lines reach their file (Envoy's own default is 10 s,
	// too slow for someone watching denials).
	DefaultFileFlushInterval = time.Second
	// DefaultRestartBackoff is the wait before the first restart.
	DefaultRestartBackoff = time.Second
	// DefaultMaxRestartBackoff caps the doubling restart backoff.
	DefaultMaxRestartBackoff = 30 * time.Second
	// DefaultStopTimeout is how long Envoy gets after SIGTERM.
	DefaultStopTimeout = 10 * time.Second
)

const (
	// healthyRunTime is how long Envoy must have run for the restart
	// backoff to start again from SupervisorConfig.RestartBackoff.
	healthyRunTime = time.Minute
	// killWait bounds the wait for a process to disappear after SIGKILL.
	killWait = 5 * time.Second
)

// adoptedPollInterval is how often an adopted Envoy (not our child, so no
// wait(2)) is checked for life.
var adoptedPollInterval = 500 * time.Millisecond

// Log field keys.
const (
	keyPID      = "pid"
	keyBinary   = "binary"
	keyArgs     = "args"
	keyExitCode = "exit_code"
	keySignal   = "signal"
	keyUptime   = "uptime"
	keyBackoff  = "backoff"
	keyRestarts = "restarts"
	keyPIDFile  = "pid_file"
)

// SupervisorConfig configures a Supervisor. Only BinaryPath, Bootstrap and
// RunDir are required.
type SupervisorConfig struct {
	// BinaryPath is the Envoy binary (see Locate).
	BinaryPath string
	// Bootstrap is the bootstrap YAML (see BootstrapYAML), written to
	// RunDir/bootstrap.yaml on Start.
	Bootstrap []byte
	// RunDir is the state folder: bootstrap file and envoy.pid. It is
	// created when missing. Keep it stable across egressd restarts: the pid
	// file in it is how a running Envoy is adopted.
	RunDir string
	// LogLevel is Envoy's --log-level (trace, debug, info, warn, error,
	// critical, off); default warn.
	LogLevel string
	// DrainTime is Envoy's --drain-time-s: how long connections on a
	// listener changed or removed over LDS are given to finish.
	DrainTime time.Duration
	// FileFlushInterval bounds how long access log lines stay buffered in
	// Envoy before they are written to the file.
	FileFlushInterval time.Duration
	// Logger receives the supervisor's own events; default: no logging.
	Logger *zap.Logger
	// Stdout and Stderr receive Envoy's own output; default os.Stdout and
	// os.Stderr. Use an *os.File: Envoy then inherits the descriptor and
	// keeps logging when egressd dies. Any other writer is fed through a
	// pipe that breaks when egressd exits.
	Stdout, Stderr io.Writer
	// RestartBackoff is the wait before the first restart after Envoy
	// exits unexpectedly; it doubles on every further exit up to
	// MaxRestartBackoff and starts again once Envoy has run for a minute.
	RestartBackoff time.Duration
	// MaxRestartBackoff caps the restart backoff.
	MaxRestartBackoff time.Duration
	// StopTimeout is how long Envoy gets to exit after SIGTERM when the
	// supervisor stops, before SIGKILL.
	StopTimeout time.Duration
}

// Supervisor keeps one Envoy process running: it starts Envoy (or adopts
// one left running by a previous egressd), restarts it with backoff when
// it exits, and stops it when its context ends.
//
// Envoy runs in its own process group and is deliberately not tied to
// egressd's life (no parent-death signal): when egressd is killed, Envoy
// keeps serving its last configuration, and the next Supervisor with the
// same RunDir adopts it.
type Supervisor struct {
	cfg           SupervisorConfig
	log           *zap.Logger
	bootstrapPath string
	pidPath       string
	started       atomic.Bool

	mu       sync.Mutex
	pid      int
	restarts int
}

// NewSupervisor checks c and fills its defaults.
func NewSupervisor(c SupervisorConfig) (*Supervisor, error) {
	if c.BinaryPath == "" {
		return nil, errors.New("envoy supervisor: binary path is empty (see Locate)")
	}
	bin, err := checkExecutable(c.BinaryPath, "supervisor config")
	if err != nil {
		return nil, fmt.Errorf("envoy supervisor: %w", err)
	}
	c.BinaryPath = bin
	if len(c.Bootstrap) == 0 {
		return nil, errors.New("envoy supervisor: bootstrap is empty (see BootstrapYAML)")
	}
	if c.RunDir == "" {
		return nil, errors.New("envoy supervisor: run folder is empty")
	}
	if c.RunDir, err = filepath.Abs(c.RunDir); err != nil {
		return nil, fmt.Errorf("envoy supervisor: run folder: %w", err)
	}
	if c.LogLevel == "" {
		c.LogLevel = DefaultLogLevel
	}
	switch c.LogLevel {
	case "trace", "debug", "info", "warning", "warn", "error", "critical", "off":
	default:
		return nil, fmt.Errorf("envoy supervisor: log level %q: want one of trace, debug, info, warn, error, critical, off", c.LogLevel)
	}
	if c.DrainTime <= 0 {
		c.DrainTime = DefaultDrainTime
	}
	if c.FileFlushInterval <= 0 {
		c.FileFlushInterval = DefaultFileFlushInterval
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	if c.RestartBackoff <= 0 {
		c.RestartBackoff = DefaultRestartBackoff
	}
	if c.MaxRestartBackoff <= 0 {
		c.MaxRestartBackoff = DefaultMaxRestartBackoff
	}
	c.MaxRestartBackoff = max(c.MaxRestartBackoff, c.RestartBackoff)
	if c.StopTimeout <= 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	return &Supervisor{
		cfg:           c,
		log:           c.Logger,
		bootstrapPath: filepath.Join(c.RunDir, BootstrapFile),
		pidPath:       filepath.Join(c.RunDir, PIDFile),
	}, nil
}

// PID is the pid of the Envoy being supervised (started or adopted), or 0
// while none runs.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// Restarts counts the Envoy processes started after an exit (of a started
// or an adopted Envoy).
func (s *Supervisor) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// Args are the arguments Envoy is started with (without the binary).
func (s *Supervisor) Args() []string {
	return []string{
		"-c", s.bootstrapPath,
		"--log-level", s.cfg.LogLevel,
		"--drain-time-s", strconv.Itoa(int(s.cfg.DrainTime.Round(time.Second) / time.Second)),
		"--file-flush-interval-msec", strconv.FormatInt(s.cfg.FileFlushInterval.Milliseconds(), 10),
		// No hot restart: we never hand over sockets, and with it a
		// SIGKILLed Envoy leaves a shared memory segment behind. It also
		// lets several Envoys share a host (no base id to collide on).
		"--disable-hot-restart",
	}
}

// Start writes the bootstrap, adopts the Envoy named by RunDir/envoy.pid if
// it is still running or else starts one, and keeps Envoy running until ctx
// is done; then it stops Envoy (SIGTERM, then SIGKILL after StopTimeout)
// and returns nil. It returns an error only when it cannot set up: the run
// folder or the bootstrap file cannot be written, or the first Envoy cannot
// be started. Start may be called once.
func (s *Supervisor) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("envoy supervisor: already started")
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := os.MkdirAll(s.cfg.RunDir, 0o755); err != nil {
		return fmt.Errorf("envoy supervisor: run folder: %w", err)
	}
	previous, _ := os.ReadFile(s.bootstrapPath)
	if err := writeFileAtomic(s.bootstrapPath, s.cfg.Bootstrap); err != nil {
		return fmt.Errorf("envoy supervisor: bootstrap: %w", err)
	}

	p := s.adopt(previous)
	if p == nil {
		var err error
		if p, err = s.spawn(false); err != nil {
			return fmt.Errorf("envoy supervisor: %w", err)
		}
	}

	backoff := s.cfg.RestartBackoff
	for {
		if p != nil {
			select {
			case <-ctx.Done():
				s.stop(p)
				return nil
			case <-p.done:
			}
			s.setPID(0)
			uptime := time.Since(p.startedAt)
			s.log.Error("envoy exited unexpectedly",
				append(p.exitFields(), zap.Duration(keyUptime, uptime), zap.Duration(keyBackoff, backoff))...)
			if uptime >= healthyRunTime {
				backoff = s.cfg.RestartBackoff
			}
		}

		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			s.removePIDFile(0)
			return nil
		case <-t.C:
		}
		next := min(2*backoff, s.cfg.MaxRestartBackoff)

		var err error
		if p, err = s.spawn(true); err != nil {
			s.log.Error("cannot restart envoy", zap.Error(err), zap.Duration(keyBackoff, next))
			p = nil
		}
		backoff = next
	}
}

func (s *Supervisor) setPID(pid int) {
	s.mu.Lock()
	s.pid = pid
	s.mu.Unlock()
}

// process is one Envoy being watched, started by us or adopted.
type process struct {
	pid       int
	adopted   bool
	startedAt time.Time
	done      chan struct{} // closed once the process has exited

	// For a child, set before done is closed.
	state *os.ProcessState
	err   error

	stopPoll chan struct{} // adopted only: ends the poll loop
}

// exitFields describes how the process ended (only its pid while it runs).
func (p *process) exitFields() []zap.Field {
	f := []zap.Field{zap.Int(keyPID, p.pid), zap.Bool("adopted", p.adopted)}
	select {
	case <-p.done:
	default:
		return f
	}
	if p.err != nil {
		f = append(f, zap.Error(p.err))
	}
	if p.state != nil {
		f = append(f, zap.Int(keyExitCode, p.state.ExitCode()))
		if ws, ok := p.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			f = append(f, zap.String(keySignal, ws.Signal().String()))
		}
	}
	return f
}

// spawn starts Envoy in its own process group and records its pid; a
// restart also counts in Restarts.
func (s *Supervisor) spawn(restart bool) (*process, error) {
	args := s.Args()
	cmd := exec.Command(s.cfg.BinaryPath, args...)
	cmd.Dir = s.cfg.RunDir
	cmd.Stdout = s.cfg.Stdout
	cmd.Stderr = s.cfg.Stderr
	// Own process group: a terminal's Ctrl-C or a signal to egressd's group
	// does not reach Envoy, egressd stops it itself. Deliberately no
	// Pdeathsig: Envoy must outlive a killed egressd (fail closed, keep the
	// last configuration).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.cfg.BinaryPath, err)
	}
	p := &process{pid: cmd.Process.Pid, startedAt: time.Now(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		p.state = cmd.ProcessState
		if p.state != nil {
			// A non-zero exit is reported through the exit code.
			p.err = nil
		}
		close(p.done)
	}()
	s.mu.Lock()
	s.pid = p.pid
	if restart {
		s.restarts++
	}
	restarts := s.restarts
	s.mu.Unlock()
	s.log.Info("envoy started", zap.Int(keyPID, p.pid), zap.Int(keyRestarts, restarts),
		zap.String(keyBinary, s.cfg.BinaryPath), zap.Strings(keyArgs, args))
	if err := writeFileAtomic(s.pidPath, []byte(strconv.Itoa(p.pid)+"\n")); err != nil {
		s.log.Error("cannot write pid file; a restarted egressd will not adopt this envoy",
			zap.String(keyPIDFile, s.pidPath), zap.Error(err))
	}
	return p, nil
}

// adopt returns the Envoy named by the pid file when it still runs with our
// bootstrap path, watched by polling; nil otherwise.
func (s *Supervisor) adopt(previousBootstrap []byte) *process {
	raw, err := os.ReadFile(s.pidPath)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("cannot read pid file; starting a new envoy", zap.String(keyPIDFile, s.pidPath), zap.Error(err))
		}
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		s.log.Warn("ignoring malformed pid file", zap.String(keyPIDFile, s.pidPath))
		return nil
	}
	st, err := readProcStat(pid)
	if err != nil || st.state == 'Z' || st.state == 'X' {
		s.log.Info("envoy from pid file is gone; starting a new one", zap.Int(keyPID, pid))
		return nil
	}
	if err := syscall.Kill(pid, 0); err != nil || !s.isOurEnvoy(pid) {
		s.log.Warn("pid file names a process that is not our envoy; starting a new one",
			zap.Int(keyPID, pid), zap.String(keyPIDFile, s.pidPath))
		return nil
	}
	p := &process{pid: pid, adopted: true, startedAt: time.Now(), done: make(chan struct{}), stopPoll: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(adoptedPollInterval)
		defer t.Stop()
		for {
			select {
			case <-p.stopPoll:
				return
			case <-t.C:
			}
			if !alive(pid, st.startTime) {
				return
			}
		}
	}()
	s.setPID(pid)
	s.log.Info("adopted running envoy", zap.Int(keyPID, pid), zap.String(keyPIDFile, s.pidPath))
	if previousBootstrap != nil && !bytes.Equal(previousBootstrap, s.cfg.Bootstrap) {
		s.log.Warn("adopted envoy runs the previous bootstrap; the new one applies when envoy restarts",
			zap.Int(keyPID, pid))
	}
	return p
}

// isOurEnvoy reports whether pid runs an Envoy binary with our bootstrap.
func (s *Supervisor) isOurEnvoy(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	isEnvoy := false
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		exe = strings.TrimSuffix(exe, " (deleted)")
		isEnvoy = filepath.Base(exe) == "envoy" || exe == s.cfg.BinaryPath
		if real, err := filepath.EvalSymlinks(s.cfg.BinaryPath); err == nil && exe == real {
			isEnvoy = true
		}
	} else if len(argv) > 0 {
		isEnvoy = filepath.Base(argv[0]) == "envoy"
	}
	if !isEnvoy {
		return false
	}
	for i, a := range argv {
		if a == "--config-path="+s.bootstrapPath ||
			(i > 0 && a == s.bootstrapPath && (argv[i-1] == "-c" || argv[i-1] == "--config-path")) {
			return true
		}
	}
	return false
}

// stop ends Envoy: SIGTERM to its process group, SIGKILL after
// StopTimeout; then it removes the pid file.
func (s *Supervisor) stop(p *process) {
	s.log.Info("stopping envoy", zap.Int(keyPID, p.pid), zap.Bool("adopted", p.adopted))
	s.signal(p, syscall.SIGTERM)
	t := time.NewTimer(s.cfg.StopTimeout)
	select {
	case <-p.done:
		t.Stop()
	case <-t.C:
		s.log.Warn("envoy did not exit after SIGTERM; sending SIGKILL",
			zap.Int(keyPID, p.pid), zap.Duration("stop_timeout", s.cfg.StopTimeout))
		s.signal(p, syscall.SIGKILL)
		k := time.NewTimer(killWait)
		select {
		case <-p.done:
			k.Stop()
		case <-k.C:
			s.log.Error("envoy still running after SIGKILL", zap.Int(keyPID, p.pid))
		}
	}
	if p.stopPoll != nil {
		close(p.stopPoll)
	}
	s.setPID(0)
	s.removePIDFile(p.pid)
	s.log.Info("envoy stopped", append(p.exitFields(), zap.Duration(keyUptime, time.Since(p.startedAt)))...)
}

// signal sends sig to Envoy's process group when Envoy leads one (always
// for our children), else to Envoy alone.
func (s *Supervisor) signal(p *process, sig syscall.Signal) {
	target := p.pid
	if !p.adopted {
		target = -p.pid
	} else if pgid, err := syscall.Getpgid(p.pid); err == nil && pgid == p.pid {
		target = -p.pid
	}
	if err := syscall.Kill(target, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		s.log.Warn("cannot signal envoy", zap.Int(keyPID, p.pid), zap.String(keySignal, sig.String()), zap.Error(err))
	}
}

// removePIDFile removes the pid file when it names pid (any pid if 0).
func (s *Supervisor) removePIDFile(pid int) {
	if pid != 0 {
		raw, err := os.ReadFile(s.pidPath)
		if err != nil || strings.TrimSpace(string(raw)) != strconv.Itoa(pid) {
			return
		}
	}
	if err := os.Remove(s.pidPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("cannot remove pid file", zap.String(keyPIDFile, s.pidPath), zap.Error(err))
	}
}

// procStat is the part of /proc/<pid>/stat we use.
type procStat struct {
	state     byte
	startTime uint64 // clock ticks after boot; tells a reused pid apart
}

func readProcStat(pid int) (procStat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	fields := strings.Fields(string(raw[i+1:]))
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 || len(fields[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: starttime: %w", pid, err)
	}
	return procStat{state: fields[0][0], startTime: start}, nil
}

// alive reports whether pid still runs the process that started at
// startTime: not gone, not a zombie, not a reused pid.
func alive(pid int, startTime uint64) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	st, err := readProcStat(pid)
	if err != nil {
		return false
	}
	return st.state != 'Z' && st.state != 'X' && st.startTime == startTime
}

// writeFileAtomic replaces path with data through a rename, so a reader
// never sees a partial file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
