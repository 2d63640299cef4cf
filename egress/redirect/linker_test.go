package redirect

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

const allowlistYAML = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: docker-io, namespace: ci}
spec:
  hosts: [www.docker.io]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: https, protocol: HTTPS}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: e2e}
spec:
  hosts: [b.test]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  resolution: DNS
`

func testAllowlist(t *testing.T) func() *serviceentry.Allowlist {
	t.Helper()
	a := serviceentry.CompileYAML("allow.yaml", []byte(allowlistYAML))
	if len(a.Problems()) > 0 {
		t.Fatal(a.Problems())
	}
	return func() *serviceentry.Allowlist { return a }
}

var (
	client = netip.MustParseAddrPort("10.0.0.7:40000")
	other  = netip.MustParseAddrPort("10.0.0.8:40000")
	t0     = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
)

func httpReq(src netip.AddrPort, host string, port uint32, path string, status int, location string, verdict vocab.Verdict, reason vocab.Reason) *decision.Decision {
	return &decision.Decision{Time: t0, Layer: vocab.LayerHTTP, Source: src, Host: host, Port: port, Path: path,
		Status: status, Location: location, Verdict: verdict, Reason: reason}
}

// summary is a chain as a comparable string list: "hop url status verdict reason".
func hops(c *decision.Chain) []decision.Hop {
	if c == nil {
		return nil
	}
	return c.Hops
}

// TestDockerChain: http://www.docker.io -> https://www.docker.io ->
// https://www.docker.com is one chain; the last hop is denied as soon as the
// second hop's redirect is seen, and again when the client follows it.
func TestDockerChain(t *testing.T) {
	l := NewLinker("c", 0, 0, testAllowlist(t), serviceentry.RegistryOnly)
	allow, deny := vocab.VerdictAllow, vocab.VerdictDeny

	out := l.Link(httpReq(client, "www.docker.io", 80, "/", 301, "https://www.docker.io/", allow, vocab.ReasonAllowed), t0)
	if len(out) != 1 || out[0].Chain == nil || out[0].Chain.Hop != 0 {
		t.Fatalf("first redirect: %+v", out)
	}
	id := out[0].Chain.ID

	// The HTTPS hop is TLS passthrough: the gateway sees the SNI only.
	tlsHop := &decision.Decision{Time: t0.Add(time.Millisecond), Layer: vocab.LayerTLS, Source: netip.AddrPortFrom(client.Addr(), 40001),
		Host: "www.docker.io", Port: 443, Verdict: allow, Reason: vocab.ReasonAllowed}
	out = l.Link(tlsHop, t0)
	if len(out) != 1 || out[0].Chain == nil || out[0].Chain.ID != id || out[0].Chain.Hop != 1 {
		t.Fatalf("TLS hop: %+v", out[0].Chain)
	}

	// Seen as HTTP (TLS origination), the second hop redirects to an
	// unlisted host: reported before the client follows.
	l2 := NewLinker("c", 0, 0, testAllowlist(t), serviceentry.RegistryOnly)
	l2.Link(httpReq(client, "www.docker.io", 80, "/", 301, "http://www.docker.io:443/x", allow, vocab.ReasonAllowed), t0)
	out = l2.Link(httpReq(client, "www.docker.io", 443, "/x", 302, "https://www.docker.com/", allow, vocab.ReasonAllowed), t0)
	if len(out) != 2 {
		t.Fatalf("redirect to unlisted: got %d decisions, want the hop and its denial", len(out))
	}
	denied := out[1]
	want := []decision.Hop{
		{URL: "http://www.docker.io/", Host: "www.docker.io", Status: 301, Verdict: allow, Reason: vocab.ReasonAllowed},
		{URL: "http://www.docker.io:443/x", Host: "www.docker.io", Status: 302, Verdict: allow, Reason: vocab.ReasonAllowed},
		{URL: "https://www.docker.com/", Host: "www.docker.com", Verdict: deny, Reason: vocab.ReasonRedirectUnlisted},
	}
	if diff := cmp.Diff(want, hops(denied.Chain)); diff != "" {
		t.Errorf("chain (-want +got):\n%s", diff)
	}
	if denied.Verdict != deny || denied.Reason != vocab.ReasonRedirectUnlisted || denied.Host != "www.docker.com" ||
		denied.Port != 443 || denied.Chain.Hop != 2 || denied.Source != client {
		t.Errorf("denial %+v", denied)
	}

	// The client follows anyway: its request is hop 2 of the same chain.
	out = l2.Link(httpReq(other, "www.docker.com", 443, "/", 403, "", deny, vocab.ReasonNotInRegistry), t0)
	if out[0].Chain != nil {
		t.Errorf("another source's request joined the chain: %+v", out[0].Chain)
	}
	followed := &decision.Decision{Time: t0, Layer: vocab.LayerTLS, Source: client, Host: "www.docker.com", Port: 443,
		Verdict: deny, Reason: vocab.ReasonNotInRegistry}
	out = l2.Link(followed, t0)
	if len(out) != 1 || out[0].Chain == nil || out[0].Chain.ID != denied.Chain.ID || out[0].Chain.Hop != 2 {
		t.Fatalf("followed hop: %+v", out[0].Chain)
	}
	if got := out[0].Chain.Hops[2]; got.Reason != vocab.ReasonNotInRegistry || got.URL != "https://www.docker.com/" {
		t.Errorf("observed hop replaces the predicted one: %+v", got)
	}
}

func TestRedirectVerdicts(t *testing.T) {
	cases := map[string]struct {
		mode     serviceentry.OutboundMode
		location string
		want     []string // verdict/reason of the extra decision; nil: none
		wantHost string
	}{
		"relative stays on host":   {serviceentry.RegistryOnly, "/login", nil, "b.test"},
		"listed host":              {serviceentry.RegistryOnly, "http://www.docker.io/", nil, "www.docker.io"},
		"listed host, wrong port":  {serviceentry.RegistryOnly, "http://b.test:8080/", []string{string(vocab.VerdictDeny), string(vocab.ReasonRedirectUnlisted)}, "b.test"},
		"unlisted, REGISTRY_ONLY":  {serviceentry.RegistryOnly, "https://evil.example/", []string{string(vocab.VerdictDeny), string(vocab.ReasonRedirectUnlisted)}, "evil.example"},
		"unlisted, AUDIT":          {serviceentry.Audit, "https://evil.example/", []string{string(vocab.VerdictAuditDeny), string(vocab.ReasonRedirectUnlisted)}, "evil.example"},
		"unlisted, ALLOW_ANY":      {serviceentry.AllowAny, "https://evil.example/", nil, "evil.example"},
		"upper case, trailing dot": {serviceentry.RegistryOnly, "http://WWW.Docker.IO./", nil, "www.docker.io"},
		"scheme-relative":          {serviceentry.RegistryOnly, "//evil.example/x", []string{string(vocab.VerdictDeny), string(vocab.ReasonRedirectUnlisted)}, "evil.example"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			l := NewLinker("c", 0, 0, testAllowlist(t), tc.mode)
			out := l.Link(httpReq(client, "b.test", 80, "/start?q=1", 302, tc.location, vocab.VerdictAllow, vocab.ReasonAllowed), t0)
			var got []string
			if len(out) == 2 {
				got = []string{string(out[1].Verdict), string(out[1].Reason)}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("extra decision (-want +got):\n%s", diff)
			}
			if len(out[0].Chain.Hops) != 1 {
				t.Errorf("the 3xx decision's hops: %+v, want itself only", out[0].Chain.Hops)
			}
			if _, ok := l.pending[pendingKey{client.Addr(), tc.wantHost}]; !ok {
				t.Errorf("no pending Location for %s: %v", tc.wantHost, l.pending)
			}
		})
	}
}

func TestNotRedirects(t *testing.T) {
	l := NewLinker("c", 0, 0, testAllowlist(t), serviceentry.RegistryOnly)
	for _, d := range []*decision.Decision{
		httpReq(client, "b.test", 80, "/", 200, "", vocab.VerdictAllow, vocab.ReasonAllowed),
		httpReq(client, "b.test", 80, "/", 304, "", vocab.VerdictAllow, vocab.ReasonAllowed), // 3xx without Location
		httpReq(client, "b.test", 80, "/", 302, "ftp://files.example/", vocab.VerdictAllow, vocab.ReasonAllowed),
		httpReq(client, "b.test", 80, "/", 302, "http://%zz/", vocab.VerdictAllow, vocab.ReasonAllowed),
		{Layer: vocab.LayerDNS, Host: "b.test", Source: client},
	} {
		out := l.Link(d, t0)
		if len(out) != 1 || out[0].Chain != nil {
			t.Errorf("%+v: got %d decisions, chain %+v", d, len(out), out[0].Chain)
		}
	}
	if len(l.pending) != 0 {
		t.Errorf("pending %v", l.pending)
	}
}

func TestExpiryAndBound(t *testing.T) {
	l := NewLinker("c", 10*time.Second, 2, testAllowlist(t), serviceentry.RegistryOnly)
	l.Link(httpReq(client, "b.test", 80, "/", 302, "http://www.docker.io/", vocab.VerdictAllow, vocab.ReasonAllowed), t0)
	late := httpReq(client, "www.docker.io", 80, "/", 200, "", vocab.VerdictAllow, vocab.ReasonAllowed)
	if out := l.Link(late, t0.Add(11*time.Second)); out[0].Chain != nil {
		t.Errorf("a request after the TTL joined the chain: %+v", out[0].Chain)
	}
	for i, host := range []string{"a.example", "b.example", "c.example"} {
		l.Link(httpReq(client, "b.test", 80, "/", 302, "http://"+host+"/", vocab.VerdictAllow, vocab.ReasonAllowed), t0.Add(time.Duration(20+i)*time.Second))
	}
	if len(l.pending) != 2 {
		t.Fatalf("pending %d, want the bound 2", len(l.pending))
	}
	if _, ok := l.pending[pendingKey{client.Addr(), "a.example"}]; ok {
		t.Error("the oldest Location survived the bound")
	}
}
