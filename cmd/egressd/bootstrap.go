package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/egressd/egressd/egress/envoy"
)

// bootstrapCommand prints the Envoy bootstrap for a gateway run outside
// egressd (`egressd run --envoy=external`), e.g. into a ConfigMap.
func bootstrapCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("egressd bootstrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c envoy.BootstrapConfig
	fs.StringVar(&c.XDSAddress, "xds-address", "127.0.0.1:18000", "host:port of egressd's xDS server as the gateway reaches it")
	fs.StringVar(&c.AdminAddress, "envoy-admin", envoy.DefaultAdminAddress, "ip:port of the gateway's admin interface")
	fs.StringVar(&c.NodeID, "node-id", envoy.DefaultNodeID, "node id the gateway reports")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	out, err := envoy.BootstrapYAML(c)
	if err != nil {
		fmt.Fprintln(stderr, "egressd bootstrap:", err)
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}
