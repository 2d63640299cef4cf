package testkit

import (
	"net"
	"testing"
)

// FreePort returns a TCP port free on 127.0.0.1 now. Another process may
// take it before the test binds it; tests bind it at once.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePortOn(t, "127.0.0.1")
}

// FreePortOn is FreePort on another local address.
func FreePortOn(t testing.TB, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
