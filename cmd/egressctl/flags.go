package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// Environment variables that set the global flags' defaults.
const (
	envAdmin = "EGRESSD_ADMIN"
	envToken = "EGRESSD_TOKEN"
)

// defaultAdmin is egressd's default admin address.
const defaultAdmin = "http://127.0.0.1:15000"

// getenv reads the environment; tests replace it.
var getenv = os.Getenv

// usageError is a mistake in the command line: exit code 2. An empty msg
// means the flag package already said what is wrong.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// global holds the flags every command takes.
type global struct {
	admin, token string
}

// register adds --admin and --token to fs, defaulting to g's values.
func (g *global) register(fs *flag.FlagSet) {
	fs.StringVar(&g.admin, "admin", g.admin, "egressd's admin address (env "+envAdmin+")")
	fs.StringVar(&g.token, "token", g.token, "bearer token for the admin API (env "+envToken+")")
}

// parseGlobal reads the global flags before the command name; the
// environment gives their defaults.
func parseGlobal(args []string, stderr io.Writer) (*global, []string, error) {
	g := &global{admin: getenv(envAdmin), token: getenv(envToken)}
	if g.admin == "" {
		g.admin = defaultAdmin
	}
	fs := newFlagSet("egressctl", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	g.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, nil, flagError(err)
	}
	return g, fs.Args(), nil
}

// newFlagSet makes a command's flag set, which reports errors to stderr
// and leaves the exit to run.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: egressctl %s [flags]\n\nFlags:\n", name)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses a command's flags; it refuses positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q; see egressctl help", fs.Name(), fs.Arg(0))
	}
	return nil
}

// flagError keeps flag.ErrHelp (exit 0) and makes any other error a usage
// error; the flag package has printed it already.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{}
}

// checkSince accepts a duration ("15m") or an RFC 3339 time, as the admin
// API does.
func checkSince(flagName, s string) error {
	if _, err := time.Parse(time.RFC3339, s); err == nil {
		return nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return nil
	}
	return usagef("--%s %q: use a duration such as 15m or 2h, or an RFC 3339 time such as 2026-01-02T15:04:05Z", flagName, s)
}
