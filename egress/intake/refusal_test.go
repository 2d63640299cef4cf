package intake

import (
	"net/netip"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/egress/xds"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/netguard"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// TestGuardDeniedHTTP: the address guard's RBAC denial after the forward
// proxy becomes forwarding_loop or blocked_address, also under AUDIT.
func TestGuardDeniedHTTP(t *testing.T) {
	auditTags := map[string]string{xds.TagLayer: "http", xds.TagPort: "80", xds.TagVerdict: "audit-deny", xds.TagReason: "not_in_registry"}
	for _, tc := range []struct {
		authority, policy string
		reason            vocab.Reason
		detail            string
	}{
		{"127.77.0.1:10080", xds.GuardPolicyLoop, vocab.ReasonForwardingLoop, "127.77.0.1 is the gateway's own address"},
		{"169.254.169.254", xds.GuardPolicyBlocked, vocab.ReasonBlockedAddress, "169.254.169.254 is link_local; the gateway does not connect there"},
		{"localhost:15001", xds.GuardPolicyBlocked, vocab.ReasonBlockedAddress, "localhost resolves to a blocked address; the gateway does not connect there"},
		{"gw.example:80", xds.GuardPolicyLoop, vocab.ReasonForwardingLoop, "gw.example resolves to the gateway's own address"},
	} {
		e := &datav3.HTTPAccessLogEntry{
			CommonProperties: commonProps(auditTags, nil),
			Request:          &datav3.HTTPRequestProperties{Authority: tc.authority, Path: "/", RequestMethod: corev3.RequestMethod_GET},
			Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(403),
				ResponseCodeDetails: "rbac_access_denied_matched_policy[" + tc.policy + "]"},
		}
		d, ok := FromHTTP(e, nil)
		if !ok || d.Verdict != vocab.VerdictDeny || d.Reason != tc.reason || d.Detail != tc.detail {
			t.Errorf("%s: %+v", tc.authority, d)
		}
	}
}

func refusedLedger(name, entry string, addrs ...string) *netguard.Ledger {
	l := netguard.NewLedger(time.Minute, 10)
	p := &netguard.Policy{Self: []netip.Prefix{netip.MustParsePrefix("127.77.0.1/32")}}
	r := netguard.Refusal{Name: name, ServiceEntry: entry, At: time.Now()}
	for _, a := range addrs {
		r.Refused = append(r.Refused, p.Check(netip.MustParseAddr(a), nil))
	}
	l.Refuse(r)
	return l
}

// TestRefused: a request or connection that got no upstream because the
// resolver refused its name's addresses names them.
func TestRefused(t *testing.T) {
	a := compile(t, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: ci}
spec:
  hosts: [api.example.test]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  endpoints: [{address: backend.example.test}]
`)
	now := time.Now()
	for name, tc := range map[string]struct {
		d      decision.Decision
		ledger *netguard.Ledger
		reason vocab.Reason
		detail string
		entry  string
	}{
		"the host": {
			d:      decision.Decision{Layer: "http", Verdict: "deny", Reason: "upstream_error", Host: "rebind.example.test", Flags: "UH"},
			ledger: refusedLedger("rebind.example.test", "ci/rebind", "127.0.0.1"),
			reason: vocab.ReasonBlockedAddress, entry: "ci/rebind",
			detail: "rebind.example.test resolved to 127.0.0.1 (loopback); the gateway does not connect there",
		},
		"an endpoint name of the entry": {
			d:      decision.Decision{Layer: "tls", Verdict: "deny", Reason: "upstream_error", Host: "api.example.test", Port: 443, Flags: "UH"},
			ledger: refusedLedger("backend.example.test", "ci/api", "10.0.0.1"),
			reason: vocab.ReasonBlockedAddress, entry: "ci/api",
			detail: "backend.example.test resolved to 10.0.0.1 (private); the gateway does not connect there",
		},
		"an SNI that is the gateway's address, under ALLOW_ANY": {
			d:      decision.Decision{Layer: "tls", Verdict: "allow", Reason: "allow_any", Host: "127.77.0.1", Flags: "UH"},
			ledger: refusedLedger("127.77.0.1", "", "127.77.0.1"),
			reason: vocab.ReasonForwardingLoop,
			detail: "127.77.0.1 resolved to 127.77.0.1 (the gateway's own address); the gateway does not connect there",
		},
		"reached its upstream": {
			d:      decision.Decision{Layer: "http", Verdict: "allow", Reason: "allowed", Host: "rebind.example.test"},
			ledger: refusedLedger("rebind.example.test", "", "127.0.0.1"),
			reason: "allowed",
		},
		"failed for another name": {
			d:      decision.Decision{Layer: "http", Verdict: "deny", Reason: "upstream_error", Host: "other.example.test", Flags: "UF"},
			ledger: refusedLedger("rebind.example.test", "", "127.0.0.1"),
			reason: vocab.ReasonUpstreamError,
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := tc.d
			Refused(&d, a, tc.ledger, now)
			if d.Reason != tc.reason || d.Detail != tc.detail || d.ServiceEntry != tc.entry {
				t.Errorf("got %+v", d)
			}
			if tc.reason == vocab.ReasonBlockedAddress || tc.reason == vocab.ReasonForwardingLoop {
				if d.Verdict != vocab.VerdictDeny {
					t.Errorf("verdict %s", d.Verdict)
				}
			}
		})
	}
}

func compile(t testing.TB, y string) *serviceentry.Allowlist {
	t.Helper()
	a := serviceentry.CompileYAML("test.yaml", []byte(y))
	if errs := a.Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	return a
}
