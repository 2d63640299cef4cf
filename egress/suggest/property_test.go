package suggest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
	"github.com/google/go-cmp/cmp"
)

// TestYAMLAlwaysValid: over many generated inputs, YAML's output parses
// back with serviceentry.Parse without errors, one entry per suggestion;
// names are unique labels; the result does not depend on input order; and
// the compiled output allows every host and port it suggests.
func TestYAMLAlwaysValid(t *testing.T) {
	allow := mustAllowlist(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: listed}
spec:
  hosts: [api.example.com, "*.cdn.example.net"]
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 8080, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.example.org]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: DNS
`)
	r := rand.New(rand.NewPCG(1, 2))
	var total, wildcards, clashes, shadowed int
	for i := range 500 {
		ds := randomDecisions(r)
		o := Options{WildcardMin: r.IntN(6) - 1}
		if r.IntN(2) == 0 {
			o.Namespace = pick(r, "egress", "default", "team-a")
		}
		if r.IntN(3) == 0 {
			o.Allowlist = allow
		}
		ss := Suggest(ds, o)
		out, err := YAML(ss, o)
		if err != nil {
			t.Fatalf("case %d: %v\ninput: %s", i, err, describeDecisions(ds))
		}
		entries, problems := serviceentry.Parse("out.yaml", out)
		for _, p := range problems {
			if p.Severity == serviceentry.SeverityError {
				t.Fatalf("case %d: %v", i, p)
			}
		}
		if len(entries) != len(ss) {
			t.Fatalf("case %d: %d entries, %d suggestions", i, len(entries), len(ss))
		}
		for _, s := range ss {
			total++
			if serviceentry.IsWildcard(s.Host) {
				wildcards++
			}
			for _, n := range s.Notes {
				clashes += strings.Count(n, "clashes")
				shadowed += strings.Count(n, "already allowed by")
			}
		}
		checkNames(t, i, ss)
		checkAllowed(t, i, ss, entries)

		shuffled := slices.Clone(ds)
		r.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		if d := cmp.Diff(ss, Suggest(shuffled, o)); d != "" {
			t.Fatalf("case %d: order changes the result (-first +shuffled):\n%s", i, d)
		}
	}
	// The generator must reach every shape of output, or this test proves
	// little.
	if total == 0 || wildcards == 0 || clashes == 0 || shadowed == 0 {
		t.Errorf("generated %d suggestions, %d wildcards, %d clash notes, %d shadowed-port notes; want some of each", total, wildcards, clashes, shadowed)
	}
	t.Logf("%d suggestions, %d wildcards, %d clash notes, %d shadowed-port notes", total, wildcards, clashes, shadowed)
}

func checkNames(t *testing.T, i int, ss []Suggestion) {
	t.Helper()
	seen := map[string]bool{}
	for _, s := range ss {
		if !serviceentry.IsDNS1123Label(s.Name) || seen[s.Name] {
			t.Fatalf("case %d: name %q invalid or repeated", i, s.Name)
		}
		seen[s.Name] = true
		if len(s.Sources) > MaxSources || !slices.IsSortedFunc(s.Sources, compareSources) {
			t.Fatalf("case %d: sources %v", i, s.Sources)
		}
	}
}

// checkAllowed compiles the output and checks that it allows each
// suggestion's hosts on its ports (except where a note reports a clash,
// which Compile resolves by dropping one side).
func checkAllowed(t *testing.T, i int, ss []Suggestion, entries []*serviceentry.Entry) {
	t.Helper()
	a := serviceentry.Compile(entries, nil)
	for _, s := range ss {
		if slices.ContainsFunc(s.Notes, func(n string) bool { return strings.Contains(n, "clashes") }) {
			continue
		}
		hosts := s.Covers
		if len(hosts) == 0 {
			hosts = []string{s.Host}
		}
		for _, h := range hosts {
			for _, p := range s.Ports {
				if _, _, ok := a.MatchPort(h, p.Number); !ok {
					t.Fatalf("case %d: %s port %d not allowed by the suggestions; problems: %v", i, h, p.Number, a.Problems())
				}
			}
		}
	}
}

var (
	labels   = []string{"a", "b", "api", "www", "cdn", "x-1", "xn--bcher-kva", strings.Repeat("l", 63), "Mixed", "9"}
	domains  = []string{"example.com", "example.co.uk", "github.io", "alice.github.io", "svc.cluster.local", "example.net", "co.uk", "com", "example.org", "cdn.example.net"}
	layers   = []vocab.Layer{"dns", "http", "tls", "tcp", "udp", ""}
	reasons  = []vocab.Reason{"not_in_registry", "not_in_registry", "redirect_to_unlisted_host", "cname_to_unlisted_host", "no_sni", "tls_origination_failed"}
	verdicts = []vocab.Verdict{"deny", "deny", "audit-deny", "allow"}
)

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func randomHost(r *rand.Rand) string {
	switch r.IntN(20) {
	case 0:
		return ""
	case 1:
		return "192.0.2." + fmt.Sprint(r.IntN(255))
	case 2:
		return "[2001:db8::1]"
	case 3:
		return "bad_name.example.com"
	}
	h := pick(r, domains...)
	for n := r.IntN(4); n > 0; n-- {
		h = pick(r, labels...) + "." + h
	}
	if len(h) > 253 {
		h = h[len(h)-253:]
		h = strings.TrimLeft(h, ".-")
	}
	if r.IntN(5) == 0 {
		h += "."
	}
	return h
}

func randomDecisions(r *rand.Rand) []*decision.Decision {
	var ds []*decision.Decision
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for j := r.IntN(40); j >= 0; j-- {
		d := &decision.Decision{
			ID:      uint64(j + 1),
			Time:    base.Add(time.Duration(r.IntN(3600)) * time.Second),
			Layer:   pick(r, layers...),
			Verdict: pick(r, verdicts...),
			Reason:  pick(r, reasons...),
			Source:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(20))}), uint16(r.IntN(65535))),
			Host:    randomHost(r),
			Port:    []uint32{0, 80, 443, 5432, 8080, 8443, 70000}[r.IntN(7)],
		}
		if r.IntN(4) == 0 {
			d.Identity = "spiffe://cluster.local/ns/a/sa/" + pick(r, "x", "y")
		}
		switch d.Reason {
		case vocab.ReasonRedirectUnlisted:
			d.Location = pick(r, "", "/rel", "https://"+randomHost(r)+"/", "http://"+randomHost(r)+":8081/x", "ftp://"+randomHost(r), "http://[::1]:99999/")
			if r.IntN(2) == 0 {
				d.Chain = &decision.Chain{ID: "c", Hops: []decision.Hop{{URL: "https://" + randomHost(r) + "/"}}}
			}
		case vocab.ReasonCNAMEToUnlisted:
			d.Detail = d.Host + " -> " + randomHost(r)
		}
		ds = append(ds, d)
	}
	return ds
}

func describeDecisions(ds []*decision.Decision) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "\n  %s %s %s %q:%d loc=%q detail=%q", d.Layer, d.Verdict, d.Reason, d.Host, d.Port, d.Location, d.Detail)
	}
	return b.String()
}
