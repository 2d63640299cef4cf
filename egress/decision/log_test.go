package decision

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/egressd/egressd/serviceentry/vocab"
)

func TestLogger(t *testing.T) {
	when := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	redirect := &Decision{
		ID:           42,
		Time:         when,
		Layer:        vocab.LayerHTTP,
		Verdict:      vocab.VerdictDeny,
		Reason:       vocab.ReasonRedirectUnlisted,
		Source:       netip.MustParseAddrPort("10.0.0.7:51234"),
		Identity:     "shop/checkout",
		Host:         "c.test",
		Port:         80,
		Protocol:     "HTTP/1.1",
		Destination:  "192.0.2.1:80",
		Upstream:     "192.0.2.9:80",
		ServiceEntry: "shop/c",
		Method:       "GET",
		Path:         "/x",
		Status:       403,
		Location:     "http://d.test/",
		Flags:        "RBAC",
		Detail:       "redirected from b.test",
		Chain: &Chain{ID: "ch-1", Hop: 2, Hops: []Hop{
			{URL: "http://a.test/", Host: "a.test", Status: 301, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed},
			{URL: "http://b.test/", Host: "b.test", Status: 302, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed},
			{URL: "http://c.test/", Host: "c.test", Verdict: vocab.VerdictDeny, Reason: vocab.ReasonRedirectUnlisted},
		}},
	}
	tests := map[string]struct {
		in        *Decision
		wantLevel zapcore.Level
		wantMsg   string // "" means no line
		want      map[string]any
	}{
		"allow is not logged": {
			in: dec(1, vocab.VerdictAllow, "a.test"),
		},
		"deny with every field and a chain": {
			in:        redirect,
			wantLevel: zap.WarnLevel,
			wantMsg:   "egress denied",
			want: map[string]any{
				"decision_id":    uint64(42),
				"event_time":     "2025-03-01T12:00:00.123456789Z",
				"layer":          "http",
				"verdict":        "deny",
				"reason":         "redirect_to_unlisted_host",
				"host":           "c.test",
				"port":           uint32(80),
				"source":         "10.0.0.7:51234",
				"identity":       "shop/checkout",
				"protocol":       "HTTP/1.1",
				"destination":    "192.0.2.1:80",
				"upstream":       "192.0.2.9:80",
				"serviceentry":   "shop/c",
				"method":         "GET",
				"path":           "/x",
				"status":         int64(403),
				"location":       "http://d.test/",
				"response_flags": "RBAC",
				"detail":         "redirected from b.test",
				"chain_id":       "ch-1",
				"hop":            int64(2),
				"chain":          "http://a.test/ 301 -> http://b.test/ 302 -> http://c.test/ deny (redirect_to_unlisted_host)",
			},
		},
		"audit-deny, empty fields left out": {
			in: &Decision{
				ID: 7, Time: when, Layer: vocab.LayerDNS, Verdict: vocab.VerdictAuditDeny,
				Reason: vocab.ReasonNotInRegistry, Host: "x.test", Protocol: "DNS/A",
			},
			wantLevel: zap.InfoLevel,
			wantMsg:   "egress audit-denied",
			want: map[string]any{
				"decision_id": uint64(7),
				"event_time":  "2025-03-01T12:00:00.123456789Z",
				"layer":       "dns",
				"verdict":     "audit-deny",
				"reason":      "not_in_registry",
				"host":        "x.test",
				"protocol":    "DNS/A",
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			NewLogger(zap.New(core)).Consume(tc.in)
			entries := logs.AllUntimed()
			if tc.wantMsg == "" {
				if len(entries) != 0 {
					t.Fatalf("logged %d lines, want none", len(entries))
				}
				return
			}
			if len(entries) != 1 {
				t.Fatalf("logged %d lines, want 1", len(entries))
			}
			e := entries[0]
			if e.Message != tc.wantMsg || e.Level != tc.wantLevel {
				t.Errorf("logged %s %q, want %s %q", e.Level, e.Message, tc.wantLevel, tc.wantMsg)
			}
			if diff := cmp.Diff(tc.want, e.ContextMap()); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoggerLevelFilter(t *testing.T) {
	// A logger at Warn drops audit-deny lines but keeps deny lines.
	core, logs := observer.New(zap.WarnLevel)
	l := NewLogger(zap.New(core))
	l.Consume(dec(1, vocab.VerdictAuditDeny, "a.test"))
	l.Consume(dec(2, vocab.VerdictDeny, "b.test"))
	if got := logs.Len(); got != 1 {
		t.Fatalf("logged %d lines, want 1", got)
	}
	if got := logs.All()[0].ContextMap()["host"]; got != "b.test" {
		t.Errorf("logged host %v, want b.test", got)
	}
}

func TestChainString(t *testing.T) {
	tests := map[string]struct {
		in   []Hop
		want string
	}{
		"empty": {nil, ""},
		"statuses then a denied hop": {
			[]Hop{
				{URL: "http://a.test/", Status: 301, Verdict: vocab.VerdictAllow},
				{URL: "http://b.test/", Status: 302, Verdict: vocab.VerdictAllow},
				{URL: "http://c.test/", Verdict: vocab.VerdictDeny, Reason: vocab.ReasonRedirectUnlisted},
			},
			"http://a.test/ 301 -> http://b.test/ 302 -> http://c.test/ deny (redirect_to_unlisted_host)",
		},
		"allowed hop not followed yet": {
			[]Hop{{URL: "http://a.test/", Status: 307, Verdict: vocab.VerdictAllow}, {URL: "http://b.test/", Verdict: vocab.VerdictAllow}},
			"http://a.test/ 307 -> http://b.test/",
		},
		"audit-deny without reason": {
			[]Hop{{URL: "https://a.test/", Verdict: vocab.VerdictAuditDeny}},
			"https://a.test/ audit-deny",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ChainString(tc.in); got != tc.want {
				t.Errorf("ChainString = %q, want %q", got, tc.want)
			}
		})
	}
}
