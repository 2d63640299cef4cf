package e2e

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsServer answers A queries under zone with 127.0.0.1 and everything
// else with NXDOMAIN, over UDP on loopback: the gateway's resolver.
func dnsServer(t *testing.T, zone string) string {
	t.Helper()
	return dnsServerTo(t, zone, net.IPv4(127, 0, 0, 1))
}

// dnsServerTo is dnsServer answering with ip.
func dnsServerTo(t *testing.T, zone string, ip net.IP) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := q.Question[0].Name
		switch {
		case !dns.IsSubDomain(zone, name):
			m.Rcode = dns.RcodeNameError
		case q.Question[0].Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
				A:   ip,
			})
		}
		_ = w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: mux, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// lowPortListener finds a free loopback port below 10000, so that the
// service port plus the gateway's offset of 10000 is still a valid port.
func lowPortListener(t *testing.T) net.Listener {
	t.Helper()
	for p := 2000 + time.Now().Nanosecond()%7000; p < 9999; p++ {
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			return ln
		}
	}
	t.Fatal("no free port below 10000")
	return nil
}

// TestWildcardHostsThroughTheGateway: "*.wild.test" with resolution NONE is
// resolved by the gateway itself (via --gateway-dns), for HTTP by Host and
// for TLS by SNI; a sibling name outside the wildcard stays denied.
func TestWildcardHostsThroughTheGateway(t *testing.T) {
	skipShort(t)
	resolver := dnsServer(t, "wild.test.")

	httpLn := lowPortListener(t)
	httpSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "wild upstream saw host %s\n", r.Host)
	})}
	go func() { _ = httpSrv.Serve(httpLn) }()
	t.Cleanup(func() { _ = httpSrv.Close() })
	httpPort := httpLn.Addr().(*net.TCPAddr).Port

	tlsLn := lowPortListener(t)
	tlsPort := tlsLn.Addr().(*net.TCPAddr).Port
	tlsLn.Close()
	_, cert := upstreamTLSOn(t, fmt.Sprintf("127.0.0.1:%d", tlsPort), "*.wild.test")

	dir := t.TempDir()
	writeFile(t, dir, "wild.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: e2e}
spec:
  hosts: ["*.wild.test"]
  ports:
  - {number: %d, name: http, protocol: HTTP}
  - {number: %d, name: tls, protocol: TLS}
  resolution: NONE
`, httpPort, tlsPort))
	g := startGateway(t, dir, "--gateway-dns", resolver)

	get := func(host string) (int, string, error) { return g.getHost(host, httpPort) }
	eventually(t, 30*time.Second, "wildcard HTTP host allowed", func() error {
		code, body, err := get("api.wild.test")
		if err != nil || code != 200 {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		if !strings.Contains(body, fmt.Sprintf("wild upstream saw host api.wild.test:%d", httpPort)) {
			return fmt.Errorf("body %q", body)
		}
		return nil
	})
	if code, body, err := get("deep.er.wild.test"); err != nil || code != 200 {
		t.Errorf("multi-label name under the wildcard: %d %q %v", code, body, err)
	}
	if code, _, err := get("wild.test"); err != nil || code != 403 {
		t.Errorf("the wildcard's own apex must be denied: %d %v", code, err)
	}
	if code, _, err := get("api.notwild.test"); err != nil || code != 403 {
		t.Errorf("a name outside the wildcard must be denied: %d %v", code, err)
	}
	g.accessLogEntry(t, map[string]string{"layer": "http", "verdict": "allow", "serviceentry": "e2e/wild", "host": fmt.Sprintf("api.wild.test:%d", httpPort)})

	// TLS by SNI to the same wildcard, resolved at the gateway.
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	raw, err := net.DialTimeout("tcp", g.Addr(tlsPort), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tlsClient(raw, "svc.wild.test", roots)
	if err != nil {
		t.Fatalf("TLS to a wildcard SNI: %v", err)
	}
	if !conn.ConnectionState().PeerCertificates[0].Equal(cert) {
		t.Error("not the upstream's certificate")
	}
	conn.Close()
	raw, err = net.DialTimeout("tcp", g.Addr(tlsPort), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := tlsClient(raw, "svc.notwild.test", nil); err == nil {
		conn.Close()
		t.Error("TLS to an SNI outside the wildcard succeeded")
	}
}
