package xds

import (
	"reflect"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// memo is the resources of one translation by the part of the gateway
// model each was built from, with their digests once published. A Server
// translates with the last publish's, so a change that leaves a port's
// model unchanged reuses its listener and route table, and one changed
// ServiceEntry among 10,000 rebuilds and re-marshals only its own
// clusters. A resource is reused only when its model node is deeply
// equal to the one it was built from: what the model holds is all a
// builder reads (but for the Server's Options, which are fixed), so
// nothing can be reused stale. A memo is never changed once published.
type memo struct {
	byKind map[memoKind]map[string]memoized
	// digests are the digests the resources were published under (see
	// published); nil until then.
	digests map[string]map[string]string
	// clusterSecrets are the SDS secrets of its clusters that name any
	// (see secretsOf).
	clusterSecrets map[*clusterv3.Cluster][]string
	// hint is how many resources of each kind to expect (the last
	// memo's): the maps' initial sizes.
	hint map[memoKind]int
}

// memoKind is the xDS type of memoized resources.
type memoKind string

const (
	memoListener memoKind = resourcev3.ListenerType
	memoRoute    memoKind = resourcev3.RouteType
	memoCluster  memoKind = resourcev3.ClusterType
)

type memoized struct {
	node any // the model node the message was built from
	msg  proto.Message
}

func newMemo() *memo {
	return &memo{byKind: map[memoKind]map[string]memoized{}}
}

// successor is an empty memo for the next build, sized like m.
func (m *memo) successor() *memo {
	next := newMemo()
	if m != nil {
		next.hint = make(map[memoKind]int, len(m.byKind))
		for kind, byName := range m.byKind {
			next.hint[kind] = len(byName)
		}
	}
	return next
}

// built is how many resources m holds, published or not.
func (m *memo) built() int {
	if m == nil {
		return 0
	}
	n := 0
	for _, byName := range m.byKind {
		n += len(byName)
	}
	return n
}

// get returns the message built from node under name, with its digest,
// if node is unchanged and the message was published.
func (m *memo) get(kind memoKind, name string, node any) (proto.Message, string, bool) {
	if m == nil {
		return nil, "", false
	}
	e, ok := m.byKind[kind][name]
	if !ok {
		return nil, "", false
	}
	d, ok := m.digests[string(kind)][name]
	if !ok && kind == memoCluster {
		d, ok = m.digests[onDemandDigests][name]
	}
	if !ok || !reflect.DeepEqual(e.node, node) {
		return nil, "", false
	}
	return e.msg, d, true
}

func (m *memo) put(kind memoKind, name string, node any, msg proto.Message) {
	byName := m.byKind[kind]
	if byName == nil {
		byName = make(map[string]memoized, m.hint[kind])
		m.byKind[kind] = byName
	}
	byName[name] = memoized{node: node, msg: msg}
}

// published is m with the digests the resources were published under
// (by type URL, then name): only resources with one are reused. The
// digests are those of m's own messages (one Resources'), so a name's
// digest is its message's.
func (m *memo) published(digests map[string]map[string]string) *memo {
	if m == nil {
		return newMemo()
	}
	return &memo{byKind: m.byKind, digests: digests, clusterSecrets: m.clusterSecrets}
}

// secrets returns the secrets kept for c.
func (m *memo) secrets(c *clusterv3.Cluster) ([]string, bool) {
	if m == nil {
		return nil, false
	}
	names, ok := m.clusterSecrets[c]
	return names, ok
}

// keepSecrets keeps the secrets of c.
func (m *memo) keepSecrets(c *clusterv3.Cluster, names []string) {
	if m.clusterSecrets == nil {
		m.clusterSecrets = map[*clusterv3.Cluster][]string{}
	}
	m.clusterSecrets[c] = names
}
