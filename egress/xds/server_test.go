package xds

import (
	"context"
	"reflect"
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

// TestClusterKeyCoversTheModel fails when the compiled model grows a
// field: clusterKey must then be checked, since a cluster built from an
// input the key does not cover would be reused stale.
func TestClusterKeyCoversTheModel(t *testing.T) {
	for typ, want := range map[reflect.Type]int{
		reflect.TypeOf(serviceentry.Entry{}):    10, // the key reads Ref, Resolution, Endpoints; TLS-related fields make hp.TLS
		reflect.TypeOf(serviceentry.Port{}):     4,
		reflect.TypeOf(serviceentry.Endpoint{}): 3,
		reflect.TypeOf(serviceentry.HostPort{}): 3, // Port, Entry, TLS (TLS ports are not memoized)
	} {
		if got := typ.NumField(); got != want {
			t.Errorf("%v has %d fields, clusterKey was written for %d: check whether the new one changes clusters, then update the key and this test", typ, got, want)
		}
	}
}

// TestMemoizedTranslationEqualsFresh translates an allowlist, changes
// entries (a host added, a resolution and a port changed), and translates
// again with the first translation's clusters: the result must equal a
// fresh translation, resource for resource, and the unchanged clusters
// must have been reused.
func TestMemoizedTranslationEqualsFresh(t *testing.T) {
	opts := scaleOptions(t)
	cfg, problems := serviceentry.ParseConfig("gen.yaml", gen.ServiceEntries(1000, 1))
	first, err := Translate(serviceentry.CompileConfig(cfg, problems), opts)
	if err != nil {
		t.Fatal(err)
	}
	_, digests := first.digests()
	memo := newClusterMemo(first.built, digests[resourcev3.ClusterType])
	if len(memo.byKey) < 1000 {
		t.Fatalf("memo holds %d clusters", len(memo.byKey))
	}

	changed := cfg
	changed.Entries = slices.Clone(cfg.Entries)
	edit := func(kind gen.Kind, f func(e *serviceentry.Entry)) {
		for i, e := range cfg.Entries {
			if gen.KindOf(i) == kind {
				c := *e
				f(&c)
				changed.Entries[i] = &c
				return
			}
		}
	}
	edit(gen.KindTLS, func(e *serviceentry.Entry) { e.Hosts = append(slices.Clone(e.Hosts), "added.memo.test") })
	edit(gen.KindHTTP, func(e *serviceentry.Entry) { e.Resolution = serviceentry.ResolutionDNSRoundRobin })
	edit(gen.KindTCP, func(e *serviceentry.Entry) {
		e.Ports = slices.Clone(e.Ports)
		e.Ports[0].TargetPort = 15432
	})
	a := serviceentry.CompileConfig(changed, problems)
	fresh, err := Translate(a, opts)
	if err != nil {
		t.Fatal(err)
	}
	memoized, err := translate(a, opts, memo)
	if err != nil {
		t.Fatal(err)
	}
	if len(memoized.known) < len(memo.byKey)-10 {
		t.Errorf("only %d of %d clusters were reused", len(memoized.known), len(memo.byKey))
	}
	want, got := fresh.messages(), memoized.messages()
	if len(want) != len(got) {
		t.Fatalf("%d resources, fresh translation has %d", len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(want[i], got[i]) {
			t.Errorf("resource %d (%s) differs from the fresh translation", i, name(want[i]))
		}
	}
	v1, _ := fresh.digests()
	v2, _ := memoized.digests()
	if v1 != v2 {
		t.Errorf("versions differ: fresh %s, memoized %s", v1, v2)
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
