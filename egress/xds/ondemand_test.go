package xds

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/zap/zaptest"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
)

// odClient is one ODCDS stream to an onDemand service on loopback.
type odClient struct {
	t      *testing.T
	stream grpc.BidiStreamingClient[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]
}

func startOnDemand(t *testing.T) (*onDemand, func() *odClient) {
	t.Helper()
	od := newOnDemand(zaptest.NewLogger(t), func(name string) *clusterv3.Cluster { return absentCluster(Options{}, name) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	od.register(gs)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return od, func() *odClient {
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		stream, err := clusterservice.NewClusterDiscoveryServiceClient(conn).DeltaClusters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return &odClient{t: t, stream: stream}
	}
}

func (c *odClient) send(req *discoveryv3.DeltaDiscoveryRequest) {
	c.t.Helper()
	req.TypeUrl = resourcev3.ClusterType
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

// recv is the next response: the names it carries and removes.
func (c *odClient) recv() (resp *discoveryv3.DeltaDiscoveryResponse, names []string) {
	c.t.Helper()
	got := make(chan *discoveryv3.DeltaDiscoveryResponse, 1)
	go func() {
		r, err := c.stream.Recv()
		if err != nil {
			c.t.Error(err)
		}
		got <- r
	}()
	select {
	case r := <-got:
		for _, res := range r.GetResources() {
			names = append(names, res.GetName())
		}
		return r, names
	case <-time.After(5 * time.Second):
		c.t.Fatal("no response in 5 s")
		return nil, nil
	}
}

func testClusters(timeout time.Duration, names ...string) (map[string]*clusterv3.Cluster, map[string]string) {
	cs, vs := map[string]*clusterv3.Cluster{}, map[string]string{}
	for _, n := range names {
		cs[n] = &clusterv3.Cluster{Name: n, ConnectTimeout: durationpb.New(timeout)}
		vs[n] = n + "@" + timeout.String()
	}
	return cs, vs
}

// versions is name=version of a response's resources.
func versions(resp *discoveryv3.DeltaDiscoveryResponse) []string {
	var out []string
	for _, r := range resp.GetResources() {
		out = append(out, r.GetName()+"="+r.GetVersion())
	}
	return out
}

// TestOnDemandService: a cluster asked for is sent; a name that is no
// cluster is answered at once with an absent cluster; a change reaches the
// streams that hold the cluster, and only those; a removed cluster becomes
// an absent one; held (WaitAcked's part) waits for the ACKs; a NACK is
// kept; absent clusters are bounded per stream.
func TestOnDemandService(t *testing.T) {
	od, dial := startOnDemand(t)
	cs, vs := testClusters(time.Second, "a", "b", "c")
	od.set("v1", 1, cs, vs)

	c1, c2 := dial(), dial()
	c1.send(&discoveryv3.DeltaDiscoveryRequest{ResourceNamesSubscribe: []string{"a", "made-up", "*"}})
	resp, _ := c1.recv()
	if got := versions(resp); !slices.Equal(got, []string{"a=" + vs["a"], "made-up=absent"}) || len(resp.GetRemovedResources()) != 0 || resp.GetSystemVersionInfo() != "v1" {
		t.Fatalf("first response: %v removed %v version %q", got, resp.GetRemovedResources(), resp.GetSystemVersionInfo())
	}
	absent := &clusterv3.Cluster{}
	if err := resp.GetResources()[1].GetResource().UnmarshalTo(absent); err != nil || absent.GetName() != "made-up" || absent.GetMetadata().GetFilterMetadata()[absentMetadata] == nil || len(absent.GetLoadAssignment().GetEndpoints()) != 0 {
		t.Errorf("absent cluster: %v %v", absent, err)
	}
	if ok, _, _ := od.held(1); ok {
		t.Error("v1 held before the stream ACKed it")
	}
	c1.send(&discoveryv3.DeltaDiscoveryRequest{ResponseNonce: resp.GetNonce()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c2.send(&discoveryv3.DeltaDiscoveryRequest{ResourceNamesSubscribe: []string{"b"}})
	resp2, names := c2.recv()
	if !slices.Equal(names, []string{"b"}) {
		t.Fatalf("second stream: %v", names)
	}
	c2.send(&discoveryv3.DeltaDiscoveryRequest{ResponseNonce: resp2.GetNonce()})
	if err := od.waitHeld(ctx, "v1", 1); err != nil {
		t.Fatal(err)
	}

	// v2 changes a, leaves b, removes c: only c1 hears of it.
	cs, vs = testClusters(2*time.Second, "a")
	bs, bv := testClusters(time.Second, "b")
	cs["b"], vs["b"] = bs["b"], bv["b"]
	od.set("v2", 2, cs, vs)
	resp, _ = c1.recv()
	if got := versions(resp); !slices.Equal(got, []string{"a=" + vs["a"]}) || resp.GetSystemVersionInfo() != "v2" {
		t.Fatalf("change: %v %q", got, resp.GetSystemVersionInfo())
	}
	// A NACK is kept, and the version is not held through it.
	c1.send(&discoveryv3.DeltaDiscoveryRequest{ResponseNonce: resp.GetNonce(), ErrorDetail: &status.Status{Message: "bad cluster a"}})
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if err := od.waitHeld(short, "v2", 2); err == nil {
		t.Error("v2 held though its change was rejected")
	}
	if od.Rejected() != "bad cluster a" {
		t.Errorf("Rejected = %q", od.Rejected())
	}

	// v3 removes a: c1 gets an absent cluster in its place.
	cs, vs = testClusters(time.Second, "b")
	od.set("v3", 3, cs, vs)
	resp, _ = c1.recv()
	if got := versions(resp); !slices.Equal(got, []string{"a=absent"}) || len(resp.GetRemovedResources()) != 0 {
		t.Fatalf("removal: %v removed %v", got, resp.GetRemovedResources())
	}
	c1.send(&discoveryv3.DeltaDiscoveryRequest{ResponseNonce: resp.GetNonce()})
	if err := od.waitHeld(ctx, "v3", 3); err != nil {
		t.Fatal(err)
	}
	// v4 lists made-up: c1, which holds its absent cluster, gets the real one.
	cs["made-up"], vs["made-up"] = &clusterv3.Cluster{Name: "made-up"}, "real"
	od.set("v4", 4, cs, vs)
	resp, _ = c1.recv()
	if got := versions(resp); !slices.Equal(got, []string{"made-up=real"}) {
		t.Fatalf("listed later: %v", got)
	}
	c1.send(&discoveryv3.DeltaDiscoveryRequest{ResponseNonce: resp.GetNonce()})
	if od.PushedBytes() == 0 {
		t.Error("PushedBytes = 0")
	}

	// After a reconnect, what Envoy says it holds is brought up to date.
	c3 := dial()
	c3.send(&discoveryv3.DeltaDiscoveryRequest{InitialResourceVersions: map[string]string{"b": "old", "a": "whatever"}})
	resp, _ = c3.recv()
	if got := versions(resp); !slices.Equal(got, []string{"a=absent", "b=" + vs["b"]}) {
		t.Fatalf("reconnect: %v", got)
	}
	c3.send(&discoveryv3.DeltaDiscoveryRequest{ResponseNonce: resp.GetNonce()})

}

// TestOnDemandAbsentBounds: a stream is made at most absentBurst absent
// clusters at once and absentRate a second after that, and holds at most
// maxAbsent; beyond, a made-up name is answered "removed". None is taken
// back, and a listed host still gets its cluster.
func TestOnDemandAbsentBounds(t *testing.T) {
	od, dial := startOnDemand(t)
	clock := time.Unix(1e9, 0)
	advance := func(d time.Duration) {
		od.mu.Lock()
		clock = clock.Add(d)
		od.mu.Unlock()
	}
	od.mu.Lock()
	od.now = func() time.Time { return clock }
	od.mu.Unlock()
	cs, vs := testClusters(time.Second, "listed")
	od.set("v1", 1, cs, vs)
	c := dial()
	next := 0
	ask := func(n int, extra ...string) (*discoveryv3.DeltaDiscoveryResponse, []string) {
		t.Helper()
		var names []string
		for range n {
			names = append(names, fmt.Sprintf("y%05d", next))
			next++
		}
		c.send(&discoveryv3.DeltaDiscoveryRequest{ResourceNamesSubscribe: append(names, extra...)})
		resp, sent := c.recv()
		c.send(&discoveryv3.DeltaDiscoveryRequest{ResponseNonce: resp.GetNonce()})
		return resp, sent
	}
	resp, sent := ask(absentBurst + 5)
	if len(sent) != absentBurst || len(resp.GetRemovedResources()) != 5 {
		t.Fatalf("burst: %d absent clusters, %d removed", len(sent), len(resp.GetRemovedResources()))
	}
	advance(100 * time.Millisecond)
	if _, sent := ask(30); len(sent) != absentRate/10 {
		t.Errorf("after 100 ms: %d absent clusters, want %d", len(sent), absentRate/10)
	}
	// Up to the cap, then no more; the listed host is not held back.
	total := absentBurst + absentRate/10
	for range maxAbsent/absentBurst + 1 {
		advance(time.Hour)
		_, sent := ask(absentBurst)
		total += len(sent)
	}
	if total != maxAbsent {
		t.Errorf("to the cap: %d absent clusters, want %d", total, maxAbsent)
	}
	advance(time.Hour)
	resp, sent = ask(10, "listed")
	if !slices.Equal(sent, []string{"listed"}) || len(resp.GetRemovedResources()) != 10 {
		t.Errorf("at the cap: sent %v, %d removed", sent, len(resp.GetRemovedResources()))
	}
}
