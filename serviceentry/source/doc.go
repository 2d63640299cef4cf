// Package source reads ServiceEntry resources from where they live and hands
// compiled Allowlists to the servers. Dir reads a folder of YAML files and
// watches it; a Kubernetes source joins it later. Sources do the I/O; the
// parsing and compiling they call are pure (package serviceentry).
package source
