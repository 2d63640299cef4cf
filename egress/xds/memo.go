package xds

import (
	"reflect"

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
}

// memoKind is the xDS type of memoized resources.
type memoKind string

const (
	memoListener memoKind = resourcev3.ListenerType
	memoRoute    memoKind = resourcev3.RouteType
	memoCluster  memoKind = resourcev3.ClusterType
)

type memoized struct {
	node   any // the model node the message was built from
	msg    proto.Message
	digest string // "" until published
}

func newMemo() *memo {
	return &memo{byKind: map[memoKind]map[string]memoized{}}
}

// get returns what was built from node under name, if node is unchanged
// and the message's digest is known.
func (m *memo) get(kind memoKind, name string, node any) (memoized, bool) {
	if m == nil {
		return memoized{}, false
	}
	e, ok := m.byKind[kind][name]
	if !ok || e.digest == "" || !reflect.DeepEqual(e.node, node) {
		return memoized{}, false
	}
	return e, true
}

func (m *memo) put(kind memoKind, name string, node any, msg proto.Message) {
	byName := m.byKind[kind]
	if byName == nil {
		byName = map[string]memoized{}
		m.byKind[kind] = byName
	}
	byName[name] = memoized{node: node, msg: msg}
}

// published is m with the digests the resources were published under
// (by type URL, then name); resources without one are dropped.
func (m *memo) published(digests map[string]map[string]string) *memo {
	out := newMemo()
	if m == nil {
		return out
	}
	for kind, byName := range m.byKind {
		for name, e := range byName {
			d, ok := digests[string(kind)][name]
			if !ok && kind == memoCluster {
				d, ok = digests[onDemandDigests][name]
			}
			if ok {
				e.digest = d
				if out.byKind[kind] == nil {
					out.byKind[kind] = map[string]memoized{}
				}
				out.byKind[kind][name] = e
			}
		}
	}
	return out
}

// size is how many resources m holds.
func (m *memo) size() int {
	n := 0
	for _, byName := range m.byKind {
		n += len(byName)
	}
	return n
}
