// Command egressctl is the operator's CLI for a running egressd: it tails
// the decisions egressd records, turns the denials into ServiceEntry
// suggestions and shows the gateway configuration in force, through
// egressd's admin HTTP API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `egressctl: operate a running egressd through its admin API

Usage:
  egressctl [--admin URL] [--token T] COMMAND [flags]

Commands:
  decisions   list recorded decisions, oldest first; --follow streams new ones
      --verdict LIST   allow, deny, audit-deny (comma-separated)
      --layer LIST     dns, http, tls, tcp (comma-separated)
      --reason LIST    e.g. not_in_registry,no_sni (comma-separated)
      --source S       client address, address:port or CIDR prefix
      --host H         host, "*.suffix", or "~substring"
      --since D        duration ("15m") or RFC 3339 time (default 15m)
      --limit N        at most N decisions (default 100)
      --follow         keep streaming new decisions until interrupted
      -o FORMAT        table or json (one object a line) (default table)
  suggest     print ServiceEntries that would allow the recorded denials
      --since D        duration ("24h") or RFC 3339 time (default 24h)
      --namespace NS   metadata.namespace of the entries
      --wildcard-min N hosts under one domain that make a "*.domain" (default 3; -1: never)
      -o FORMAT        yaml or json (default yaml)
  gateway     print the gateway configuration egressd last published: each
              listener's filter chains, what they match and what they do
      -o FORMAT        table, yaml or json (the whole model) (default table)
  cert issue  issue a workload certificate (SPIFFE X.509 SVID) from egressd's CA,
              read locally from its folder (no admin API)
      --ca-dir DIR          egressd's CA folder (Istio cacerts layout); never created
      --trust-domain TD     the mesh's trust domain (default cluster.local)
      --namespace NS        the workload's namespace
      --service-account SA  the workload's service account
      --ttl D               lifetime, at most the CA's (default 24h)
      --dns-name NAME       a DNS SAN; repeat for more
      --out DIR             writes cert.pem (chain), key.pem (0600), root-cert.pem
  version     print egressctl's version
  help        print this help

Flags of every command:
  --admin URL   egressd's admin address (env EGRESSD_ADMIN, default http://127.0.0.1:15000)
  --token T     bearer token for the admin API (env EGRESSD_TOKEN)

Exit codes: 0 ok, 1 failure, 2 usage error.
`

// run runs one command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g, rest, err := parseGlobal(args, stderr) // -h and --help print usage here
	if err != nil {
		return exitCode(err, stderr)
	}
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch cmd, args := rest[0], rest[1:]; cmd {
	case "decisions":
		err = decisionsCommand(ctx, g, args, stdout, stderr)
	case "suggest":
		err = suggestCommand(ctx, g, args, stdout, stderr)
	case "gateway":
		err = gatewayCommand(ctx, g, args, stdout, stderr)
	case "cert":
		err = certCommand(g, args, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "egressctl", version)
	case "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "egressctl: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	return exitCode(err, stderr)
}

// exitCode reports err and maps it to an exit code.
func exitCode(err error, stderr io.Writer) int {
	var u usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &u):
		if u.msg != "" {
			fmt.Fprintln(stderr, "egressctl:", u.msg)
		}
		return 2
	}
	fmt.Fprintln(stderr, "egressctl:", err)
	return 1
}
