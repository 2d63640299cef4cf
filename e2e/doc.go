// Package e2e holds egressd's end-to-end tests: the real egressd binary,
// the real Envoy gateway, real upstream servers and clients, all on
// loopback (or in network namespaces the tests create). They run in
// `make test`; `go test -short` skips them.
package e2e
