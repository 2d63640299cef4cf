package xds

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/gen"
)

// Resource types in the bookkeeping tests.
const (
	L = resourcev3.ListenerType
	C = resourcev3.ClusterType
	R = resourcev3.RouteType
)

func newTestServer(t *testing.T) *Server {
	t.Helper()
	s, err := NewServer(zap.NewNop(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAckBookkeeping is WaitAcked's rule under delta xDS, where a type
// whose resources did not change is not sent again: a version is held once
// every type has ACKed the last version that changed it, or a later one.
func TestAckBookkeeping(t *testing.T) {
	s := newTestServer(t)
	publish := func(version string, digests map[string]map[string]string) {
		s.mu.Lock()
		s.record(version, "", digests)
		s.version = version
		s.mu.Unlock()
	}
	nonce := 0
	// ack sends a response of typ at version and answers it (nack: with
	// an error), as the xDS callbacks do.
	ack := func(typ, version string, nack bool) {
		nonce++
		n := strings.Repeat("n", nonce)
		s.sentResponse(n, typ, version, 100)
		var detail *status.Status
		if nack {
			detail = &status.Status{Message: "bad listener"}
		}
		s.answered(n, typ, nil, detail)
	}
	holds := func(version string) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.holds(version)
	}

	publish("v1", map[string]map[string]string{L: {"l": "1"}, C: {"a": "1"}, R: {"r": "1"}})
	ack(L, "v1", false)
	ack(C, "v1", false)
	if holds("v1") {
		t.Error("v1 held before its routes were ACKed")
	}
	ack(R, "v1", false)
	if !holds("v1") || s.AckedVersion() != "v1" {
		t.Errorf("v1 not held after every type ACKed it (AckedVersion %q)", s.AckedVersion())
	}

	// One cluster changes: only CDS has to ACK v2.
	publish("v2", map[string]map[string]string{L: {"l": "1"}, C: {"a": "2"}, R: {"r": "1"}})
	if holds("v2") {
		t.Error("v2 held before its cluster was ACKed")
	}
	ack(C, "v2", false)
	if !holds("v2") {
		t.Error("v2 not held: an unchanged type should not need ACKing again")
	}

	// A route only removed is never answered over delta: not waited for.
	publish("v3", map[string]map[string]string{L: {"l": "3"}, C: {"a": "2"}})
	if got := s.AckedVersion(); got != "v2" {
		t.Errorf("AckedVersion = %q before v3's listener ACK, want v2", got)
	}
	ack(L, "v3", false)
	if !holds("v3") {
		t.Error("v3 not held after its listener was ACKed")
	}

	// A later ACK of the same type covers the earlier version too.
	publish("v4", map[string]map[string]string{L: {"l": "4"}, C: {"a": "2"}})
	publish("v5", map[string]map[string]string{L: {"l": "5"}, C: {"a": "2"}})
	ack(L, "v5", false)
	if !holds("v4") || !holds("v5") {
		t.Error("an ACK of v5's listener should hold v4 and v5")
	}

	// A NACK ends the wait with the gateway's message.
	publish("v6", map[string]map[string]string{L: {"l": "6"}, C: {"a": "2"}})
	ack(L, "v6", true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitAcked(ctx, "v6"); err == nil || !strings.Contains(err.Error(), "bad listener") {
		t.Errorf("WaitAcked(v6) = %v, want the rejection", err)
	}
	if err := s.WaitAcked(ctx, "never-published"); err == nil {
		t.Error("WaitAcked of an unknown version returned nil")
	}
	if got := s.PushedBytes(); got != int64(nonce*100) {
		t.Errorf("PushedBytes = %d after %d responses of 100 bytes", got, nonce)
	}
	if got := s.AckedVersion(); got != "v5" {
		t.Errorf("AckedVersion = %q after v6 was rejected, want v5", got)
	}
}

// TestMemoizedTranslationEqualsFresh edits an allowlist at random, round
// after round (hosts added and removed, resolutions, ports and addresses
// changed, entries dropped), and translates each round twice: fresh, and
// with the memo of the previous round's publish. The results must be
// equal resource for resource, with the same version, and what the edit
// did not touch must have been reused: every port's listener but the
// edited ones, and nearly every cluster.
func TestMemoizedTranslationEqualsFresh(t *testing.T) {
	for mode, opts := range map[string]Options{"registry only": scaleOptions(t), "mesh, allow any": meshAllowAny(t)} {
		t.Run(mode, func(t *testing.T) {
			cfg, problems := serviceentry.ParseConfig("gen.yaml", gen.ServiceEntries(600, 1))
			res, err := Translate(serviceentry.CompileConfig(cfg, problems), opts)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(7, 11))
			for round := range 12 {
				_, digests := res.digests()
				last := res.built.published(digests)
				var what string
				cfg, what = randomEdit(r, cfg)
				a := serviceentry.CompileConfig(cfg, problems)
				fresh, err := Translate(a, opts)
				if err != nil {
					t.Fatal(err)
				}
				memoized, err := translate(a, opts, last)
				if err != nil {
					t.Fatal(err)
				}
				want, got := fresh.messages(), memoized.messages()
				if len(want) != len(got) {
					t.Fatalf("round %d (%s): %d resources, fresh translation has %d", round, what, len(got), len(want))
				}
				for i := range want {
					if !proto.Equal(want[i], got[i]) {
						t.Errorf("round %d (%s): %T %s differs from the fresh translation", round, what, want[i], name(want[i]))
					}
				}
				v1, _ := fresh.digests()
				v2, _ := memoized.digests()
				if v1 != v2 {
					t.Errorf("round %d (%s): versions differ: fresh %s, memoized %s", round, what, v1, v2)
				}
				if reused := len(memoized.known); reused < len(want)-30 {
					t.Errorf("round %d (%s): only %d of %d resources reused", round, what, reused, len(want))
				}
				res = memoized
			}
		})
	}
}

// TestUnchangedPortIsReused: a change leaves the listeners and route
// tables it does not touch the very messages of the last publish.
func TestUnchangedPortIsReused(t *testing.T) {
	opts := scaleOptions(t)
	base := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: ns}
spec:
  hosts: [a.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: ns}
spec:
  hosts: ["*.b.example.com"]
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 8443, name: tls, protocol: TLS}]
  resolution: NONE
`
	first := translateYAML(t, opts, nil, base)
	_, digests := first.digests()
	second := translateYAML(t, opts, first.built.published(digests), strings.Replace(base, `"*.b.example.com"`, `"*.b.example.com", "*.c.example.com"`, 1))
	byName := func(r *Resources) map[string]proto.Message {
		out := map[string]proto.Message{}
		for _, m := range r.messages() {
			out[typeURL(m)+"/"+name(m)] = m
		}
		return out
	}
	before, after := byName(first), byName(second)
	for key, m := range after {
		// The new wildcard is a TLS chain of egress_8443 and a virtual
		// host of http.8080; egress_8080 does not list HTTP hosts.
		changed := strings.HasSuffix(key, "/egress_8443") || strings.HasSuffix(key, "/http.8080")
		if same := before[key] == m; same == changed {
			t.Errorf("%s: reused %v, want %v", key, same, !changed)
		}
	}
}

func translateYAML(t *testing.T, opts Options, last *memo, doc string) *Resources {
	t.Helper()
	cfg, problems := serviceentry.ParseConfig("case.yaml", []byte(doc))
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	res, err := translate(serviceentry.CompileConfig(cfg, problems), opts, last)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func meshAllowAny(t *testing.T) Options {
	o := scaleOptions(t)
	o.Outbound = serviceentry.AllowAny
	o.Mesh = testMesh
	return o
}

// randomEdit changes one entry of cfg (cfg itself is left as it is) and
// says what it did.
func randomEdit(r *rand.Rand, cfg serviceentry.Config) (serviceentry.Config, string) {
	out := cfg
	out.Entries = slices.Clone(cfg.Entries)
	i := r.IntN(len(out.Entries))
	e := *out.Entries[i]
	out.Entries[i] = &e
	switch r.IntN(6) {
	case 0:
		e.Hosts = append(slices.Clone(e.Hosts), fmt.Sprintf("added-%d.memo.test", r.IntN(1000)))
		return out, "host added to " + e.Ref.String()
	case 1:
		if len(e.Hosts) > 1 {
			e.Hosts = e.Hosts[1:]
			return out, "host removed from " + e.Ref.String()
		}
		out.Entries = slices.Delete(out.Entries, i, i+1)
		return out, "entry " + e.Ref.String() + " removed"
	case 2:
		if e.Resolution == serviceentry.ResolutionDNS {
			e.Resolution = serviceentry.ResolutionDNSRoundRobin
		} else if e.Resolution == serviceentry.ResolutionDNSRoundRobin {
			e.Resolution = serviceentry.ResolutionDNS
		}
		return out, "resolution of " + e.Ref.String()
	case 3:
		e.Ports = slices.Clone(e.Ports)
		e.Ports[0].TargetPort = uint32(10000 + r.IntN(1000))
		return out, "target port of " + e.Ref.String()
	case 4:
		e.Ports = slices.Clone(e.Ports)
		e.Ports[0].Number = uint32(9000 + r.IntN(3))
		return out, "port number of " + e.Ref.String()
	default:
		if e.Resolution != serviceentry.ResolutionDNS {
			return out, "nothing changed in " + e.Ref.String()
		}
		e.Endpoints = append(slices.Clone(e.Endpoints), serviceentry.Endpoint{Address: fmt.Sprintf("ep-%d.memo.test", r.IntN(100))})
		return out, "endpoint added to " + e.Ref.String()
	}
}

// TestResumedGatewayHoldsTheVersion: a gateway that reconnects holding the
// current resources (Envoy adopted by a restarted egressd) is sent nothing
// for a named type, so its initial resource versions must count as the ACK.
func TestResumedGatewayHoldsTheVersion(t *testing.T) {
	s := newTestServer(t)
	s.mu.Lock()
	s.record("v1", "", map[string]map[string]string{L: {"l": "1"}, C: {"a": "1"}, R: {"r": "1", "q": "1"}})
	s.version = "v1"
	s.mu.Unlock()
	for _, typ := range []string{L, C} { // wildcard types are always answered
		s.sentResponse(typ, typ, "v1", 1)
		s.answered(typ, typ, nil, nil)
	}
	s.resumedWith(R, map[string]string{"r": "0"}) // an older route: not held
	if s.AckedVersion() != "" {
		t.Fatalf("AckedVersion = %q with a stale route", s.AckedVersion())
	}
	s.resumedWith(R, map[string]string{"r": "1", "q": "1"})
	if got := s.AckedVersion(); got != "v1" {
		t.Errorf("AckedVersion = %q after the gateway resumed with v1's routes, want v1", got)
	}
	// State of the world: the first request names the version held.
	s.mu.Lock()
	s.record("v2", "", map[string]map[string]string{L: {"l": "2"}, C: {"a": "1"}, R: {"r": "1", "q": "1"}})
	s.version = "v2"
	s.mu.Unlock()
	s.resumedAt(L, "v1")
	if s.AckedVersion() != "v1" {
		t.Errorf("an old version named on resume counted as v2")
	}
	s.resumedAt(L, "v2")
	if got := s.AckedVersion(); got != "v2" {
		t.Errorf("AckedVersion = %q after resuming at v2, want v2", got)
	}
}
