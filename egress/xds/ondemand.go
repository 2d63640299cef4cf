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
// not for the whole allowlist. A name that is not a host cluster of the
// current configuration (any Host or SNI a client makes up) is answered
// at once as removed, so the request is denied without waiting, and the
// server keeps nothing for it.
//
// A limit of Envoy (1.40): a name it asked for stays subscribed, and it
// never asks again, so the next request for a name answered absent waits
// for onDemandTimeout before it is denied. That is why on-demand clusters
// are not the default: a client repeating an unlisted Host or SNI has each
// attempt held that long.
//
// The service is a small delta xDS server for one type: go-control-plane's
// cache waits for names it does not have, where ODCDS needs "no such
// cluster" answered.

// onDemandTimeout bounds how long Envoy holds a request or connection for
// a cluster it asked for (the control plane down, or a name answered
// absent before): then it is denied. egressd answers in about a
// millisecond on the same machine.
const onDemandTimeout = time.Second

// onDemandSource is the config source of on-demand clusters: delta CDS on
// a stream of its own to the control plane's cluster.
func onDemandSource(cluster string) *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
			ApiType:             corev3.ApiConfigSource_DELTA_GRPC,
			TransportApiVersion: corev3.ApiVersion_V3,
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

// onDemand serves the on-demand clusters of the current configuration.
type onDemand struct {
	log *zap.Logger

	mu       sync.Mutex
	clusters map[string]*clusterv3.Cluster
	versions map[string]string // cluster name -> digest
	version  string            // the configuration version
	gen      uint64            // one per set
	gens     map[string]uint64 // recent versions -> gen
	order    []string          // gens' versions, oldest first
	streams  map[*odStream]bool
	changed  chan struct{} // closed and replaced when a stream ACKs or ends
	nacked   string
	pushed   int64
}

func newOnDemand(log *zap.Logger) *onDemand {
	return &onDemand{log: log, clusters: map[string]*clusterv3.Cluster{}, versions: map[string]string{},
		gens: map[string]uint64{}, streams: map[*odStream]bool{}, changed: make(chan struct{})}
}

// odStream is one Envoy's ODCDS stream: the clusters it asked for, with
// the version each was last sent at.
type odStream struct {
	sent    map[string]string // name -> digest sent ("" not yet)
	absent  []string          // asked-for names to answer as removed
	wake    chan struct{}     // cap 1: something to send
	pending map[string]uint64 // nonce -> gen, until answered
	acked   uint64            // the gen this stream is known to hold
	nacked  string            // its rejection, until a later response is ACKed
	nackGen uint64            // the gen of the rejected response
	nonce   int
}

// set makes clusters (by name, with their digests) the on-demand clusters
// of version, and pushes the changed ones to the streams that hold them.
func (o *onDemand) set(version string, clusters map[string]*clusterv3.Cluster, versions map[string]string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clusters, o.versions, o.version = clusters, versions, version
	o.gen++
	if _, ok := o.gens[version]; ok {
		o.order = slices.DeleteFunc(o.order, func(v string) bool { return v == version })
	}
	o.gens[version] = o.gen
	o.order = append(o.order, version)
	if len(o.order) > historyKept {
		delete(o.gens, o.order[0])
		o.order = o.order[1:]
	}
	for st := range o.streams {
		wake(st)
	}
}

func wake(st *odStream) {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// held reports whether every ODCDS stream holds version: it ACKed the
// clusters it asked for as of version (or a later one), or had nothing to
// be sent. A version older than those remembered counts as held. A stream
// that rejected version (or a later one) never will: rejected says why.
func (o *onDemand) held(version string) (ok bool, rejected string, changed <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	g, known := o.gens[version]
	if !known {
		return true, "", nil
	}
	for st := range o.streams {
		if st.nacked != "" && st.nackGen >= g {
			return false, st.nacked, nil
		}
		if st.acked < g {
			return false, "", o.changed
		}
	}
	return true, "", nil
}

// waitHeld blocks until held(version) or ctx ends; a rejection is an
// error at once.
func (o *onDemand) waitHeld(ctx context.Context, version string) error {
	for {
		ok, rejected, changed := o.held(version)
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
	st := &odStream{sent: map[string]string{}, wake: make(chan struct{}, 1), pending: map[string]uint64{}}
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
		if g, ok := st.pending[nonce]; ok {
			delete(st.pending, nonce)
			if e := req.GetErrorDetail(); e != nil {
				o.nacked, st.nacked, st.nackGen = e.GetMessage(), e.GetMessage(), g
				o.log.Warn("gateway rejected on-demand clusters", zap.String("error", e.GetMessage()))
			} else {
				st.nacked = ""
				st.acked = max(st.acked, g)
			}
			o.notify()
		}
	}
	// After a reconnect Envoy says what it holds: those are subscribed at
	// the versions it names.
	for name, v := range req.GetInitialResourceVersions() {
		if _, ok := o.clusters[name]; ok {
			st.sent[name] = v
		} else {
			st.absent = append(st.absent, name)
		}
	}
	for _, name := range req.GetResourceNamesSubscribe() {
		if name == "*" {
			continue // no wildcard here: the core clusters come by ADS
		}
		if _, ok := o.clusters[name]; ok {
			if _, held := st.sent[name]; !held {
				st.sent[name] = ""
			}
		} else {
			st.absent = append(st.absent, name)
		}
	}
	for _, name := range req.GetResourceNamesUnsubscribe() {
		delete(st.sent, name)
	}
	if len(st.absent) > maxAbsentPending {
		return status.Errorf(codes.ResourceExhausted, "more than %d unknown clusters asked for at once", maxAbsentPending)
	}
	wake(st)
	return nil
}

// response is what st needs sent now: the clusters it asked for that it
// does not hold at their current version, and the names that are not (or
// no longer) clusters, as removed. nil when there is nothing to send; the
// stream then holds the current version.
func (o *onDemand) response(st *odStream) *discoveryv3.DeltaDiscoveryResponse {
	o.mu.Lock()
	defer o.mu.Unlock()
	resp := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: resourcev3.ClusterType, SystemVersionInfo: o.version}
	names := make([]string, 0, len(st.sent))
	for name := range st.sent {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		c, ok := o.clusters[name]
		if !ok {
			resp.RemovedResources = append(resp.RemovedResources, name)
			delete(st.sent, name)
			continue
		}
		v := o.versions[name]
		if st.sent[name] == v {
			continue
		}
		a, err := anypb.New(c)
		if err != nil {
			o.log.Error("encoding an on-demand cluster", zap.String("cluster", name), zap.Error(err))
			continue
		}
		resp.Resources = append(resp.Resources, &discoveryv3.Resource{Name: name, Version: v, Resource: a})
		st.sent[name] = v
	}
	resp.RemovedResources = append(resp.RemovedResources, st.absent...)
	st.absent = nil
	if len(resp.Resources) == 0 && len(resp.RemovedResources) == 0 {
		if o.gen > st.acked && len(st.pending) == 0 && st.nacked == "" {
			st.acked = o.gen
			o.notify()
		}
		return nil
	}
	st.nonce++
	resp.Nonce = strconv.Itoa(st.nonce)
	st.pending[resp.Nonce] = o.gen
	o.pushed += int64(proto.Size(resp))
	return resp
}
