package xds

import (
	"context"
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
	od := newOnDemand(zaptest.NewLogger(t))
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

// TestOnDemandService: a cluster asked for is sent; a name that is no
// cluster is answered at once as removed (and not kept); a change reaches
// the streams that hold the cluster, and only those; a removed cluster is
// removed; WaitAcked's part (held) waits for the ACKs; a NACK is kept.
func TestOnDemandService(t *testing.T) {
	od, dial := startOnDemand(t)
	cs, vs := testClusters(time.Second, "a", "b", "c")
	od.set("v1", cs, vs)

	c1, c2 := dial(), dial()
	c1.send(&discoveryv3.DeltaDiscoveryRequest{ResourceNamesSubscribe: []string{"a", "made-up", "*"}})
	resp, names := c1.recv()
	if !slices.Equal(names, []string{"a"}) || !slices.Equal(resp.GetRemovedResources(), []string{"made-up"}) || resp.GetSystemVersionInfo() != "v1" {
		t.Fatalf("first response: %v removed %v version %q", names, resp.GetRemovedResources(), resp.GetSystemVersionInfo())
	}
	if ok, _, _ := od.held("v1"); ok {
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
	if err := od.waitHeld(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	od.mu.Lock()
	for st := range od.streams {
		if _, kept := st.sent["made-up"]; kept {
			t.Error("the server keeps a name that is no cluster")
		}
	}
	od.mu.Unlock()

	// v2 changes a, leaves b, removes c: only c1 hears of it.
	cs, vs = testClusters(2*time.Second, "a")
	bs, bv := testClusters(time.Second, "b")
	cs["b"], vs["b"] = bs["b"], bv["b"]
	od.set("v2", cs, vs)
	resp, names = c1.recv()
	if !slices.Equal(names, []string{"a"}) || resp.GetSystemVersionInfo() != "v2" || resp.GetResources()[0].GetVersion() != vs["a"] {
		t.Fatalf("change: %v %q", names, resp.GetSystemVersionInfo())
	}
	// A NACK is kept, and the version is not held through it.
	c1.send(&discoveryv3.DeltaDiscoveryRequest{ResponseNonce: resp.GetNonce(), ErrorDetail: &status.Status{Message: "bad cluster a"}})
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if err := od.waitHeld(short, "v2"); err == nil {
		t.Error("v2 held though its change was rejected")
	}
	if od.Rejected() != "bad cluster a" {
		t.Errorf("Rejected = %q", od.Rejected())
	}

	// v3 removes a: c1 is told.
	cs, vs = testClusters(time.Second, "b")
	od.set("v3", cs, vs)
	resp, names = c1.recv()
	if len(names) != 0 || !slices.Equal(resp.GetRemovedResources(), []string{"a"}) {
		t.Fatalf("removal: %v removed %v", names, resp.GetRemovedResources())
	}
	c1.send(&discoveryv3.DeltaDiscoveryRequest{ResponseNonce: resp.GetNonce()})
	if err := od.waitHeld(ctx, "v3"); err != nil {
		t.Fatal(err)
	}
	if od.PushedBytes() == 0 {
		t.Error("PushedBytes = 0")
	}

	// After a reconnect, what Envoy says it holds is brought up to date.
	c3 := dial()
	c3.send(&discoveryv3.DeltaDiscoveryRequest{InitialResourceVersions: map[string]string{"b": "old", "a": vs["a"]}})
	resp, names = c3.recv()
	if !slices.Equal(names, []string{"b"}) || !slices.Equal(resp.GetRemovedResources(), []string{"a"}) {
		t.Fatalf("reconnect: %v removed %v", names, resp.GetRemovedResources())
	}
}
