// Package testkit is what egressd's tests share, and only its tests:
// golden files (compare, -update, stale detection), a test PKI (CAs,
// intermediates and leaves with any names, keys and validity), free
// loopback ports and benchmark targets. It imports nothing of egressd's,
// so every package's own tests can use it.
package testkit
