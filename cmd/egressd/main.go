// Command egressd is the egress gateway's control plane: it compiles
// ServiceEntries into an allowlist, serves it to an Envoy gateway over xDS
// and supervises that Envoy.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `egressd: egress gateway control plane

Usage:
  egressd run [flags]              serve the allowlist to the Envoy gateway
  egressd validate [--config DIR]  check ServiceEntry files and exit (1 if any is invalid)
  egressd bootstrap [flags]        print the Envoy bootstrap for --envoy=external gateways
  egressd version

Run "egressd run -h" for the flags.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// execute runs one subcommand and returns the process exit code.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runCommand(ctx, args[1:], stderr)
	case "validate":
		return validateCommand(args[1:], stdout, stderr)
	case "bootstrap":
		return bootstrapCommand(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "egressd", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "egressd: unknown command %q\n\n%s", args[0], usage)
	return 2
}
