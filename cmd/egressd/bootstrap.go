package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/egressd/egressd/egress/envoy"
	"github.com/egressd/egressd/egress/xdsauth"
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
	fs.Int64Var(&c.MaxDownstreamConnections, "max-connections", envoy.DefaultMaxDownstreamConnections, "open downstream connections before the gateway refuses new ones (keep below half its file descriptor limit)")
	fs.StringVar(&c.XDSCredentialsDir, "xds-credentials-dir", "/etc/egressd/xds-credentials", "folder of the gateway's xDS client credentials (the egress-gateway-xds Secret, mounted): "+xdsauth.FileTLSCertificate+" and "+xdsauth.FileValidationContext+", watched for renewals")
	fs.StringVar(&c.XDSServerIdentity, "xds-server-identity", "spiffe://cluster.local/ns/egressd-system/sa/egressd", "the SPIFFE ID egressd's xDS certificate must name (--control-plane-identity in egressd's trust domain)")
	insecure := fs.Bool("xds-insecure", false, "DEBUGGING ONLY: plaintext xDS, for egressd run --xds-insecure")
	fs.DurationVar(&c.SummaryFlush, "allowed-flush", 2*time.Second, "how often the gateway reports its counts of allowed requests to egressd (egressd run --allowed-flush; 0: egressd run --allowed-flush 0)")
	fs.BoolVar(&c.HostStats, "host-stats", false, "keep the stats of every host's cluster and filter chain (over a million at 10,000 entries)")
	maxHeap := fs.String("max-heap", "0", "heap the gateway may use before it sheds load (bytes, or with Ki, Mi, Gi; about three quarters of its memory limit; 0: unbounded)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	heap, err := parseBytes(*maxHeap)
	if err != nil {
		fmt.Fprintln(stderr, "egressd bootstrap: --max-heap:", err)
		return 2
	}
	c.MaxHeapBytes = heap
	if *insecure {
		c.XDSCredentialsDir, c.XDSServerIdentity = "", ""
	}
	out, err := envoy.BootstrapYAML(c)
	if err != nil {
		fmt.Fprintln(stderr, "egressd bootstrap:", err)
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}
