package xds

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
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
				memoized, err := translate(a, opts, last, nil, nil)
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
	res, err := translate(serviceentry.CompileConfig(cfg, problems), opts, last, nil, nil)
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
