// Package source reads Istio resources (ServiceEntry, DestinationRule,
// AuthorizationPolicy, PeerAuthentication) from where they live and hands
// compiled Allowlists to the servers. Dir reads a folder of YAML files and
// watches it; Kube watches the Kubernetes API with shared informers and
// reports invalid resources as Events and status conditions. Both compile
// through the same serviceentry functions. Sources do the I/O; the parsing
// and compiling they call are pure (package serviceentry).
package source
