package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDNSProxySteersAllowedNamesToTheGateway: egressd's DNS proxy answers an
// allowed name with the gateway's IP, the client's HTTP request to that IP
// goes through the gateway to the upstream; an unlisted name gets NXDOMAIN,
// and the refusal is counted in /metrics.
func TestDNSProxySteersAllowedNamesToTheGateway(t *testing.T) {
	skipShort(t)
	webPort := upstreamHTTP(t, "web")
	upstreamDNS := dnsServer(t, "wild.test.")
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", staticEntry("web", "web.allowed.test", 80, "HTTP", webPort))
	g := startGateway(t, dir, "--dns-upstream", upstreamDNS)
	eventually(t, 30*time.Second, "gateway ready", g.wantStatus("web.allowed.test", 200))

	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, g.DNSAddr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var addrs []string
	eventually(t, 10*time.Second, "DNS proxy answers", func() (err error) {
		addrs, err = resolver.LookupHost(ctx, "web.allowed.test")
		return err
	})
	if len(addrs) != 1 || addrs[0] != g.IP {
		t.Fatalf("web.allowed.test resolved to %v, want the gateway %s", addrs, g.IP)
	}
	// Follow the answer: connect to what DNS said, as an application would.
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, _ := net.SplitHostPort(addr)
			ips, err := resolver.LookupHost(ctx, host)
			if err != nil {
				return nil, err
			}
			var p int
			fmt.Sscan(port, &p)
			var d net.Dialer
			return d.DialContext(ctx, network, net.JoinHostPort(ips[0], fmt.Sprint(p+g.PortOffset)))
		},
	}}
	resp, err := client.Get("http://web.allowed.test/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "hello from web") {
		t.Fatalf("through DNS and the gateway: %d %q", resp.StatusCode, body)
	}

	_, err = resolver.LookupHost(ctx, "evil.example")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Fatalf("evil.example: %v, want NXDOMAIN", err)
	}

	// A name in the pass-through zone is forwarded, not refused.
	if _, err := resolver.LookupHost(ctx, "kube-dns.kube-system.svc.cluster.local"); err == nil {
		t.Error("the test upstream knows no cluster.local names; want its NXDOMAIN")
	}

	eventually(t, 5*time.Second, "refusal counted in /metrics", func() error {
		resp, err := http.Get("http://" + g.EgressdAdmin + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "egressd_dns_queries_total{") && strings.Contains(line, `reason="not_in_registry"`) &&
				strings.Contains(line, `verdict="deny"`) && !strings.HasSuffix(line, " 0") {
				return nil
			}
		}
		return fmt.Errorf("no denied egressd_dns_queries_total in /metrics")
	})
	// The log line is written by the decision stream's consumer, which
	// may run after the counter moved.
	eventually(t, 5*time.Second, "the refusal in egressd's log", func() error {
		if !strings.Contains(g.Logs(), `"verdict":"deny","reason":"not_in_registry","host":"evil.example"`) {
			return errors.New("the refusal is not in egressd's log")
		}
		return nil
	})
}
