package dnsproxy

import (
	"context"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/egressd/egressd/serviceentry"
)

// TestStartServesUDPAndTCP: one address, both transports; Start returns
// nil once its context ends, and refuses a second call.
func TestStartServesUDPAndTCP(t *testing.T) {
	s, _ := newTestServer(t, Config{Listen: "127.0.0.1:0", GatewayIPs: []netip.Addr{gw4}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	addr := s.Addr()
	if strings.HasSuffix(addr, ":0") || addr == "" {
		t.Fatalf("Addr %q, want the bound port", addr)
	}
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion("www.example.test.", dns.TypeA)
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != gw4.String() {
			t.Errorf("%s: %v", network, r.Answer)
		}
	}
	if err := s.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return")
	}
}

// TestStartAddressInUse: a taken address is an error, not a hang.
func TestStartAddressInUse(t *testing.T) {
	s1, _ := newTestServer(t, Config{Listen: "127.0.0.1:0", GatewayIPs: []netip.Addr{gw4}})
	addr := startServer(t, s1)
	s2, _ := newTestServer(t, Config{Listen: addr, GatewayIPs: []netip.Addr{gw4}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s2.Start(ctx); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Start on a taken address: %v", err)
	}
}

// TestMetrics: every answered query is counted by verdict and reason, with
// its duration; the label sets are the fixed ones.
func TestMetrics(t *testing.T) {
	up := startFake(t, zoneHandler)
	reg := prometheus.NewRegistry()
	s, _ := newTestServer(t, Config{Mode: ModeForward, Upstreams: []string{up.addr}, Registerer: reg})
	ask(t, s, "www.example.test.", dns.TypeA)
	ask(t, s, "www.example.test.", dns.TypeA)
	ask(t, s, "evil.example.net.", dns.TypeA)
	ask(t, s, "rebind.example.test.", dns.TypeA)
	ask(t, s, "alias.example.test.", dns.TypeA)
	ask(t, s, "kube-dns.svc.cluster.local.", dns.TypeA)
	m := new(dns.Msg)
	askMsg(t, s, m, "udp") // no question

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "egressd_dns_") {
			t.Errorf("metric %s lacks the egressd_dns_ prefix", f.GetName())
		}
		for _, m := range f.GetMetric() {
			key := f.GetName() + labelString(m.GetLabel())
			switch {
			case m.Counter != nil:
				got[key] = m.GetCounter().GetValue()
			case m.Histogram != nil:
				got[key] = float64(m.GetHistogram().GetSampleCount())
			case m.Gauge != nil:
				got[key] = m.GetGauge().GetValue()
			}
		}
	}
	want := map[string]float64{
		`egressd_dns_queries_total{verdict="allow",reason="allowed"}`:                2,
		`egressd_dns_queries_total{verdict="deny",reason="not_in_registry"}`:         1,
		`egressd_dns_queries_total{verdict="deny",reason="blocked_address"}`:         1,
		`egressd_dns_queries_total{verdict="allow",reason="cname_to_unlisted_host"}`: 1,
		`egressd_dns_queries_total{verdict="allow",reason="passthrough"}`:            1,
		`egressd_dns_queries_total{verdict="deny",reason="malformed"}`:               1,
		`egressd_dns_request_duration_seconds{verdict="allow"}`:                      4,
		`egressd_dns_request_duration_seconds{verdict="deny"}`:                       3,
		`egressd_dns_cache_lookups_total{result="hit"}`:                              1,
		`egressd_dns_cache_lookups_total{result="miss"}`:                             4,
		`egressd_dns_upstream_requests_total{transport="udp",result="ok"}`:           4,
		`egressd_dns_cache_entries`:                                                  4,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	// A second server cannot register the same collectors.
	if _, err := New(Config{Mode: ModeForward, Registerer: reg}); err == nil {
		t.Error("duplicate registration accepted")
	}
}

func labelString(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	// Label order as declared: verdict before reason, transport before result.
	order := map[string]int{"verdict": 0, "reason": 1, "transport": 0, "result": 1}
	sorted := append([]*dto.LabelPair(nil), ls...)
	sort.Slice(sorted, func(i, j int) bool { return order[sorted[i].GetName()] < order[sorted[j].GetName()] })
	parts := make([]string, 0, len(ls))
	for _, l := range sorted {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// TestConfig: defaults and refusals.
func TestConfig(t *testing.T) {
	c, err := Config{GatewayIPs: []netip.Addr{gw4, gw6, netip.MustParseAddr("::ffff:192.0.2.1")}, Upstreams: []string{"192.0.2.53", "[2001:db8::53]:5353"}}.validate()
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen || c.Mode != ModeGateway || c.Timeout != DefaultTimeout || c.CacheSize != DefaultCacheSize ||
		c.RefuseRcode != dns.RcodeNameError || c.Outbound != serviceentry.RegistryOnly || c.VIPRange != DefaultVIPRange ||
		!c.blockPrivate || strings.Join(c.zones, ",") != "cluster.local." {
		t.Errorf("defaults not applied: %+v", c)
	}
	if strings.Join(c.upstreams, ",") != "192.0.2.53:53,[2001:db8::53]:5353" {
		t.Errorf("upstreams %v", c.upstreams)
	}
	if len(c.gateway4) != 2 || len(c.gateway6) != 1 {
		t.Errorf("gateway families %v %v", c.gateway4, c.gateway6)
	}
	bad := map[string]Config{
		"gateway mode without IPs": {},
		"unknown mode":             {Mode: "proxy", GatewayIPs: []netip.Addr{gw4}},
		"bad upstream":             {Mode: ModeForward, Upstreams: []string{"dns.example:53"}},
		"upstream port 0":          {Mode: ModeForward, Upstreams: []string{"192.0.2.1:0"}},
		"bad rcode":                {Mode: ModeForward, RefuseRcode: dns.RcodeServerFailure},
		"bad outbound":             {Mode: ModeForward, Outbound: "DENY"},
		"VIP range too small":      {Mode: ModeForward, VIPRange: netip.MustParsePrefix("240.240.0.0/31")},
		"bad listen":               {Mode: ModeForward, Listen: "15053"},
		"bad zone":                 {Mode: ModeForward, PassthroughZones: []string{"a..b"}},
		"negative timeout":         {Mode: ModeForward, Timeout: -time.Second},
	}
	for name, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, s := range []string{"gateway", "Forward"} {
		if _, err := ParseMode(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParseMode("proxy"); err == nil {
		t.Error("ParseMode(proxy) accepted")
	}
}
