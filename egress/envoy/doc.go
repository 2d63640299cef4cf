// Package envoy runs the Envoy egress gateway that egressd configures: it
// finds the Envoy binary (Locate), builds the static bootstrap that points
// Envoy at egressd's ADS server (Bootstrap, BootstrapYAML), and supervises the
// Envoy process (Supervisor).
//
// It sits at the end of the gateway side of the pipeline:
//
//	serviceentry.Allowlist -> egress/xds (resources over ADS) -> Envoy, started and kept alive here
//
// Everything Envoy serves beyond the bootstrap (listeners, routes, clusters)
// comes over ADS from egress/xds; this package never builds those.
//
// Fail closed, keep the last configuration: Envoy runs in its own process
// group and is not killed when egressd dies, so a crashed or SIGKILLed
// egressd leaves the gateway serving the last configuration it received. The
// next egressd adopts the running Envoy through the pid file in its run
// folder instead of starting a second one.
package envoy
