package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/source"
)

// validateCommand checks a config folder without running anything. It
// prints every problem and exits 1 if any resource is invalid.
func validateCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("egressd validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("config", "examples", "folder of ServiceEntry YAML files")
	scope := scopeFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		// Without this, "egressd validate ./config" would check the
		// default folder and report it valid.
		fmt.Fprintf(stderr, "egressd validate: unexpected arguments: %s; name the folder with --config\n", strings.Join(fs.Args(), " "))
		return 2
	}
	sc, err := scope()
	if err != nil {
		fmt.Fprintln(stderr, "egressd validate:", err)
		return 2
	}
	a, err := source.LoadDir(*dir)
	if err != nil {
		fmt.Fprintln(stderr, "egressd validate:", err)
		return 1
	}
	invalid := 0
	for _, p := range a.Problems() {
		fmt.Fprintf(stdout, "%s: %s\n", p.Severity, p.Error())
		if p.Severity == serviceentry.SeverityError {
			invalid++
		}
	}
	_, policies := a.AuthorizationPoliciesFor(&sc)
	_, peers := a.PeerAuthenticationsFor(&sc)
	for _, n := range append(policies, peers...) {
		fmt.Fprintf(stdout, "not for the gateway: %s %s (%s): %s\n", n.Ref.Kind, n.Ref, location(n.Ref), n.Why)
	}
	fmt.Fprintf(stdout, "%d ServiceEntries valid, %d hosts allowed, %d errors, version %s\n",
		len(a.Entries()), len(a.Hosts()), invalid, a.Version())
	if invalid > 0 {
		return 1
	}
	return 0
}

// location is "file:line" of a resource (what is known of it).
func location(r serviceentry.Ref) string {
	if r.Line > 0 {
		return fmt.Sprintf("%s:%d", r.File, r.Line)
	}
	return r.File
}
