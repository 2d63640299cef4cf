package decision

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// queryFixture returns a store holding a varied set of decisions.
func queryFixture() *Store {
	s := NewStore(StoreConfig{Capacity: 100, AllowedCapacity: 100})
	for _, d := range []*Decision{
		{ID: 1, Time: t0, Layer: vocab.LayerDNS, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, Source: netip.MustParseAddrPort("10.0.0.1:5000"), Host: "api.example.com", ServiceEntry: "shop/example"},
		{ID: 2, Time: t0.Add(time.Minute), Layer: vocab.LayerHTTP, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonNotInRegistry, Source: netip.MustParseAddrPort("10.0.0.1:5001"), Host: "Evil.Test.", Port: 80},
		{ID: 3, Time: t0.Add(2 * time.Minute), Layer: vocab.LayerTLS, Verdict: vocab.VerdictAuditDeny, Reason: vocab.ReasonNotInRegistry, Source: netip.MustParseAddrPort("10.1.2.3:6000"), Host: "example.com", Port: 443},
		{ID: 4, Time: t0.Add(3 * time.Minute), Layer: vocab.LayerTCP, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonUnidentifiedTCP, Source: netip.MustParseAddrPort("[::ffff:192.168.1.5]:7000"), Destination: "192.0.2.10:5432", Port: 5432},
		{ID: 5, Time: t0.Add(4 * time.Minute), Layer: vocab.LayerHTTP, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonRedirectUnlisted, Source: netip.MustParseAddrPort("[2001:db8::7]:8000"), Host: "b.example.com", Port: 80,
			Chain: &Chain{ID: "chain-9", Hop: 1}},
		{ID: 6, Time: t0.Add(5 * time.Minute), Layer: vocab.LayerHTTP, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, Host: "a.example.com", Port: 80, ServiceEntry: "shop/example",
			Chain: &Chain{ID: "chain-9", Hop: 0}},
	} {
		s.Consume(d)
	}
	return s
}

func TestQueryFilters(t *testing.T) {
	s := queryFixture()
	tests := map[string]struct {
		q    Query
		want []uint64
	}{
		"everything":             {Query{}, []uint64{6, 5, 4, 3, 2, 1}},
		"verdicts":               {Query{Verdicts: []vocab.Verdict{vocab.VerdictDeny, vocab.VerdictAuditDeny}}, []uint64{5, 4, 3, 2}},
		"layers":                 {Query{Layers: []vocab.Layer{vocab.LayerTLS, vocab.LayerDNS}}, []uint64{3, 1}},
		"reasons":                {Query{Reasons: []vocab.Reason{vocab.ReasonNotInRegistry}}, []uint64{3, 2}},
		"source address":         {Query{Source: "10.0.0.1"}, []uint64{2, 1}},
		"source address:port":    {Query{Source: "10.0.0.1:5001"}, []uint64{2}},
		"source CIDR":            {Query{Source: "10.0.0.0/8"}, []uint64{3, 2, 1}},
		"source v4-mapped":       {Query{Source: "192.168.1.0/24"}, []uint64{4}},
		"source v6":              {Query{Source: "2001:db8::/32"}, []uint64{5}},
		"source invalid":         {Query{Source: "nonsense"}, nil},
		"host exact":             {Query{Host: "example.com"}, []uint64{3}},
		"host case and dot":      {Query{Host: "EVIL.test"}, []uint64{2}},
		"host wildcard":          {Query{Host: "*.example.com"}, []uint64{6, 5, 1}},
		"host substring":         {Query{Host: "~EXAMPLE"}, []uint64{6, 5, 3, 1}},
		"host from destination":  {Query{Host: "192.0.2.10"}, []uint64{4}},
		"serviceentry":           {Query{ServiceEntry: "shop/example"}, []uint64{6, 1}},
		"chain":                  {Query{ChainID: "chain-9"}, []uint64{6, 5}},
		"since inclusive":        {Query{Since: t0.Add(4 * time.Minute)}, []uint64{6, 5}},
		"until exclusive":        {Query{Until: t0.Add(2 * time.Minute)}, []uint64{2, 1}},
		"since and until":        {Query{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []uint64{3, 2}},
		"after id":               {Query{AfterID: 4}, []uint64{6, 5}},
		"limit":                  {Query{Limit: 2}, []uint64{6, 5}},
		"conditions combine":     {Query{Verdicts: []vocab.Verdict{vocab.VerdictDeny}, Layers: []vocab.Layer{vocab.LayerHTTP}, Host: "~example"}, []uint64{5}},
		"limit after filtering":  {Query{Verdicts: []vocab.Verdict{vocab.VerdictDeny}, Limit: 2}, []uint64{5, 4}},
		"nothing matches filter": {Query{Reasons: []vocab.Reason{vocab.ReasonTLSOriginationFailed}}, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := s.Query(tc.q)
			if diff := cmp.Diff(tc.want, ids(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("IDs (-want +got):\n%s", diff)
			}
			// Match agrees with the store.
			for _, d := range s.Query(Query{}) {
				wantMatch := false
				for _, id := range tc.want {
					wantMatch = wantMatch || id == d.ID
				}
				if tc.q.Limit == 0 && tc.q.Match(d) != wantMatch {
					t.Errorf("Match(decision %d) = %v, want %v", d.ID, !wantMatch, wantMatch)
				}
			}
		})
	}
}

func TestParseQuery(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		in   string
		want Query
	}{
		"empty": {"", Query{}},
		"everything": {
			"verdict=deny,audit-deny&layer=http&layer=tls&reason=not_in_registry&source=10.0.0.0/8&host=*.example.com" +
				"&serviceentry=shop/example&chain=c1&since=2025-03-01T11:00:00Z&until=15m&after_id=42&limit=7&backlog=9",
			Query{
				Verdicts:     []vocab.Verdict{"deny", "audit-deny"},
				Layers:       []vocab.Layer{"http", "tls"},
				Reasons:      []vocab.Reason{"not_in_registry"},
				Source:       "10.0.0.0/8",
				Host:         "*.example.com",
				ServiceEntry: "shop/example",
				ChainID:      "c1",
				Since:        time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC),
				Until:        now.Add(-15 * time.Minute),
				AfterID:      42,
				Limit:        7,
			},
		},
		"spaces, empty items and repeats": {"verdict=deny,+,deny&host=~api", Query{Verdicts: []vocab.Verdict{"deny"}, Host: "~api"}},
		"source forms":                    {"source=[2001:db8::1]:443", Query{Source: "[2001:db8::1]:443"}},
		"since as duration":               {"since=2h", Query{Since: now.Add(-2 * time.Hour)}},
		"limit 0":                         {"limit=0", Query{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v, err := url.ParseQuery(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseQuery(v, now)
			if err != nil {
				t.Fatalf("ParseQuery: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Query (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseQueryErrors(t *testing.T) {
	tests := map[string]struct {
		in   string
		want []string // substrings of the error
	}{
		"unknown verdict":  {"verdict=deny,block", []string{"verdict", `"block"`}},
		"unknown layer":    {"layer=udp", []string{"layer", `"udp"`}},
		"unknown reason":   {"reason=because", []string{"reason", `"because"`}},
		"bad source":       {"source=10.0.0.300", []string{"source", `"10.0.0.300"`}},
		"bare wildcard":    {"host=*", []string{"host", `"*"`}},
		"inner wildcard":   {"host=a.*.com", []string{"host", `"a.*.com"`, "leading"}},
		"empty substring":  {"host=~", []string{"host", `"~"`}},
		"bad since":        {"since=yesterday", []string{"since", `"yesterday"`}},
		"negative until":   {"until=-5m", []string{"until", `"-5m"`}},
		"until < since":    {"since=1h&until=2h", []string{"until", "before since"}},
		"bad after_id":     {"after_id=-1", []string{"after_id", `"-1"`}},
		"bad limit":        {"limit=ten", []string{"limit", `"ten"`}},
		"negative limit":   {"limit=-3", []string{"limit", `"-3"`}},
		"time not RFC3339": {"until=2025-03-01", []string{"until", `"2025-03-01"`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v, err := url.ParseQuery(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseQuery(v, time.Now())
			if err == nil {
				t.Fatal("ParseQuery succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}
