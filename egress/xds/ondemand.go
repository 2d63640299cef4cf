package xds

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// On-demand cluster discovery (ODCDS). With Options.ODCDSCluster set, the
// clusters of listed hosts are not part of the wildcard CDS every gateway
// holds: Envoy asks for a host's cluster by name the first time a request
// or connection needs it (the HTTP on_demand filter, tcp_proxy's
// on_demand), over a stream of its own to this service, and keeps it
// from then on. An Envoy therefore holds clusters for the hosts in use,
// not for the whole allowlist.
//
// A name that is no cluster of the current configuration (any Host or SNI
// a client makes up) is answered at once with an absent cluster of that
// name: no endpoints, marked absentMetadata, so the request is denied as
// not in the registry (403, or the connection closed) and logged so. Envoy
// (1.40) keeps every name it asked for subscribed and never asks twice:
// answering "removed" would leave the next request for the name waiting
// for the discovery timeout. A listed host whose entry goes becomes an
// absent cluster too. A stream is given at most maxAbsent absent clusters,
// and at most absentRate a second: beyond, a name is answered "removed"
// (denied at once this time, after the discovery timeout the next). None
// is ever taken back, for the same reason: evicting one would make every
// later request for its name wait. So a flood of made-up names cannot
// push out the absent clusters of the names clients keep repeating.
//
// The service is a small delta xDS server for one type: go-control-plane's
// cache waits for names it does not have, where ODCDS needs them answered.

// onDemandTimeout bounds how long Envoy holds a request or connection for
// a cluster it asked for (the control plane down, say): then it is denied.
const onDemandTimeout = 2 * time.Second

// absentVersion is the version of an absent cluster on a stream.
const absentVersion = "absent"

// Bounds per stream: absent clusters held by Envoy (each costs it some
// tens of KB), names subscribed (beyond it an unknown name is answered
// "removed" and not remembered), and how fast absent clusters are made
// (a cluster added is work on every Envoy thread): absentRate a second,
// with a burst of absentBurst.
const (
	maxAbsent     = 1024
	maxSubscribed = 65536
	absentRate    = 100
	absentBurst   = 256
)

// onDemandSource is the config source of on-demand clusters: delta CDS on
// a stream of its own to the control plane's cluster.
func onDemandSource(cluster string) *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
			ApiType:             corev3.ApiConfigSource_DELTA_GRPC,
			TransportApiVersion: corev3.ApiVersion_V3,
			// Without it every request carries Envoy's node, with the
			// list of all its extensions: most of a request's cost.
			SetNodeOnFirstMessageOnly: true,
			GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster},
			}}},
		}},
	}
}

// onDemandDigests is the key of on-demand clusters in Resources.digests:
// they are in the version, but no ADS type waits for them (see
// onDemand.held).
const onDemandDigests = "ondemand/" + resourcev3.ClusterType

// onDemandSecretDigests is the key of the SDS secrets only on-demand
// clusters name (see Resources.key).
const onDemandSecretDigests = "ondemand/" + resourcev3.SecretType

// onDemand serves the on-demand clusters of the current configuration.
type onDemand struct {
	log    *zap.Logger
	absent func(name string) *clusterv3.Cluster // see absentCluster
	now    func() time.Time

	mu       sync.Mutex
	clusters map[string]*clusterv3.Cluster
	versions map[string]string // cluster name -> digest
	version  string            // the configuration version
	seq      int               // its place in the order of publishing (the ledger's)
	streams  map[*odStream]bool
	changed  chan struct{} // closed and replaced when a stream ACKs or ends
	nacked   string
	pushed   int64
}

func newOnDemand(log *zap.Logger, absent func(name string) *clusterv3.Cluster) *onDemand {
	return &onDemand{log: log, absent: absent, now: time.Now, clusters: map[string]*clusterv3.Cluster{}, versions: map[string]string{},
		streams: map[*odStream]bool{}, changed: make(chan struct{})}
}

// odStream is one Envoy's ODCDS stream: the clusters it asked for, with
// what it holds of each.
type odStream struct {
	// sent: subscribed name -> the digest sent, absentVersion (an absent
	// cluster), or "" (nothing: not answered yet, or evicted).
	sent    map[string]string
	fresh   []string       // names just asked for, to answer
	full    bool           // the configuration changed: look at every name
	absents int            // absent clusters it holds
	removed []string       // names to answer "removed" without remembering
	wake    chan struct{}  // cap 1: something to send
	pending map[string]int // nonce -> seq of the version sent, until answered
	acked   int            // the seq of the version this stream is known to hold
	nacked  string         // its rejection, until a later response is ACKed
	nackSeq int            // the seq of the rejected response
	nonce   int
	// tokens and filled: the absentRate budget.
	tokens float64
	filled time.Time
}

// takeAbsent reports whether st may be sent one more absent cluster now.
func (st *odStream) takeAbsent(now time.Time) bool {
	if st.absents >= maxAbsent {
		return false
	}
	if st.filled.IsZero() {
		st.tokens, st.filled = absentBurst, now
	}
	st.tokens = min(absentBurst, st.tokens+now.Sub(st.filled).Seconds()*absentRate)
	st.filled = now
	if st.tokens < 1 {
		return false
	}
	st.tokens--
	return true
}

// set makes clusters (by name, with their digests) the on-demand clusters
// of version, the seq-th published (ackLedger.seq), and pushes the changed
// ones to the streams that hold them.
func (o *onDemand) set(version string, seq int, clusters map[string]*clusterv3.Cluster, versions map[string]string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clusters, o.versions, o.version, o.seq = clusters, versions, version, seq
	for st := range o.streams {
		st.full = true
		wake(st)
	}
}

func wake(st *odStream) {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// held reports whether every ODCDS stream holds the seq-th version: it
// ACKed the clusters it asked for as of that version (or a later one), or
// had nothing to be sent. A stream that rejected that version (or a later
// one) never will: rejected says why.
func (o *onDemand) held(seq int) (ok bool, rejected string, changed <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for st := range o.streams {
		if st.nacked != "" && st.nackSeq >= seq {
			return false, st.nacked, nil
		}
		if st.acked < seq {
			return false, "", o.changed
		}
	}
	return true, "", nil
}

// waitHeld blocks until held(seq) or ctx ends (version is its name, for
// the errors); a rejection is an error at once.
func (o *onDemand) waitHeld(ctx context.Context, version string, seq int) error {
	for {
		ok, rejected, changed := o.held(seq)
		if ok {
			return nil
		}
		if rejected != "" {
			return fmt.Errorf("xds: version %s: the gateway rejected on-demand clusters: %s", version, rejected)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("xds: version %s: on-demand clusters not ACKed: %w", version, ctx.Err())
		}
	}
}

// notify wakes WaitAcked callers. Call with o.mu held.
func (o *onDemand) notify() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// Rejected is the last NACK of an on-demand cluster ("" if none).
func (o *onDemand) Rejected() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.nacked
}

// PushedBytes is the encoded size of the on-demand responses sent.
func (o *onDemand) PushedBytes() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pushed
}

// maxAbsentPending bounds the names a stream has asked for and not yet
// been told are absent: beyond it, a client is flooding the stream.
const maxAbsentPending = 4096

// service is the gRPC cluster discovery service that answers ODCDS.
type odService struct {
	clusterservice.UnimplementedClusterDiscoveryServiceServer
	o *onDemand
}

// register adds the ODCDS service to a gRPC server.
func (o *onDemand) register(gs grpc.ServiceRegistrar) {
	clusterservice.RegisterClusterDiscoveryServiceServer(gs, odService{o: o})
}

// DeltaClusters serves one Envoy's ODCDS stream.
func (s odService) DeltaClusters(stream grpc.BidiStreamingServer[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]) error {
	o := s.o
	st := &odStream{sent: map[string]string{}, wake: make(chan struct{}, 1), pending: map[string]int{}}
	o.mu.Lock()
	o.streams[st] = true
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		delete(o.streams, st)
		o.notify()
		o.mu.Unlock()
	}()
	errc := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			if err := o.request(st, req); err != nil {
				errc <- err
				return
			}
		}
	}()
	for {
		select {
		case err := <-errc:
			return err
		case <-stream.Context().Done():
			return nil
		case <-st.wake:
			if resp := o.response(st); resp != nil {
				if err := stream.Send(resp); err != nil {
					return err
				}
			}
		}
	}
}

// request applies one request of st: an answer to a response (ACK or
// NACK) and the names subscribed and unsubscribed.
func (o *onDemand) request(st *odStream, req *discoveryv3.DeltaDiscoveryRequest) error {
	if t := req.GetTypeUrl(); t != "" && t != resourcev3.ClusterType {
		return status.Errorf(codes.InvalidArgument, "on-demand discovery serves clusters only, not %s", t)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if nonce := req.GetResponseNonce(); nonce != "" {
		if seq, ok := st.pending[nonce]; ok {
			delete(st.pending, nonce)
			if e := req.GetErrorDetail(); e != nil {
				o.nacked, st.nacked, st.nackSeq = e.GetMessage(), e.GetMessage(), seq
				o.log.Warn("gateway rejected on-demand clusters", zap.String("error", e.GetMessage()))
			} else {
				st.nacked = ""
				st.acked = max(st.acked, seq)
			}
			o.notify()
		}
	}
	// After a reconnect Envoy says what it holds: those are subscribed at
	// the versions it names.
	for name, v := range req.GetInitialResourceVersions() {
		st.subscribe(name, v)
	}
	for _, name := range req.GetResourceNamesSubscribe() {
		if name == "*" {
			continue // no wildcard here: the core clusters come by ADS
		}
		if _, ok := st.sent[name]; ok {
			st.fresh = append(st.fresh, name) // asked again: answer again
			continue
		}
		st.subscribe(name, "")
	}
	for _, name := range req.GetResourceNamesUnsubscribe() {
		if st.sent[name] == absentVersion {
			st.absents--
		}
		delete(st.sent, name)
	}
	if len(st.fresh)+len(st.removed) > maxSubscribed {
		return status.Errorf(codes.ResourceExhausted, "more than %d clusters asked for at once", maxSubscribed)
	}
	wake(st)
	return nil
}

// subscribe records name as asked for, holding version (a digest,
// absentVersion or ""), to be answered.
func (st *odStream) subscribe(name, version string) {
	if len(st.sent) >= maxSubscribed {
		st.removed = append(st.removed, name)
		return
	}
	if old, ok := st.sent[name]; ok && old == absentVersion {
		st.absents--
	}
	if version == absentVersion {
		st.absents++
	}
	st.sent[name] = version
	st.fresh = append(st.fresh, name)
}

// response is what st needs sent now: the clusters it asked for that it
// does not hold at their current version, and absent clusters (or
// "removed", beyond the bounds) for names that are not, or no longer,
// clusters. nil when there is nothing to send; the stream then holds the
// current version. Only the names just asked for are looked at, unless
// the configuration changed.
func (o *onDemand) response(st *odStream) *discoveryv3.DeltaDiscoveryResponse {
	o.mu.Lock()
	defer o.mu.Unlock()
	resp := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: resourcev3.ClusterType, SystemVersionInfo: o.version}
	names := st.fresh
	fresh := map[string]bool{}
	for _, n := range st.fresh {
		fresh[n] = true
	}
	if st.full {
		names = make([]string, 0, len(st.sent))
		for name := range st.sent {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	st.fresh, st.full = nil, false
	now := o.now()
	add := func(name, version string, c *clusterv3.Cluster) {
		a, err := anypb.New(c)
		if err != nil {
			o.log.Error("encoding an on-demand cluster", zap.String("cluster", name), zap.Error(err))
			return
		}
		resp.Resources = append(resp.Resources, &discoveryv3.Resource{Name: name, Version: version, Resource: a})
		if st.sent[name] == absentVersion {
			st.absents--
		}
		if version == absentVersion {
			st.absents++
		}
		st.sent[name] = version
	}
	for _, name := range names {
		held, subscribed := st.sent[name]
		if !subscribed {
			continue // unsubscribed meanwhile
		}
		if c, ok := o.clusters[name]; ok {
			if v := o.versions[name]; held != v {
				add(name, v, c)
			}
			continue
		}
		// Not a cluster: an absent one, if Envoy was just asking or held
		// the real one (within the budget, else "removed"); an evicted
		// name stays without.
		switch {
		case held == absentVersion:
		case fresh[name] || held != "":
			if st.takeAbsent(now) {
				add(name, absentVersion, o.absent(name))
			} else {
				resp.RemovedResources = append(resp.RemovedResources, name)
				st.sent[name] = ""
			}
		}
	}
	resp.RemovedResources = append(resp.RemovedResources, st.removed...)
	st.removed = nil
	if len(resp.Resources) == 0 && len(resp.RemovedResources) == 0 {
		if o.seq > st.acked && len(st.pending) == 0 && st.nacked == "" {
			st.acked = o.seq
			o.notify()
		}
		return nil
	}
	st.nonce++
	resp.Nonce = strconv.Itoa(st.nonce)
	st.pending[resp.Nonce] = o.seq
	o.pushed += int64(proto.Size(resp))
	return resp
}
