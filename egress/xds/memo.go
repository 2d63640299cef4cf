package xds

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/egressd/egressd/serviceentry"
)

// clusterMemo is the host clusters of the last published translation, by
// the content of what they were built from (clusterKey), with their
// digests. A Server translates with it, so one changed ServiceEntry among
// 10,000 rebuilds and re-marshals only its own clusters. It is never
// changed after it is made: the next publish makes a new one.
type clusterMemo struct {
	byKey map[string]memoCluster
}

type memoCluster struct {
	cluster *clusterv3.Cluster
	digest  string
}

// newClusterMemo keeps the clusters a translation built or reused, with
// their digests as published (digests: by cluster name).
func newClusterMemo(built map[string]*clusterv3.Cluster, digests map[string]string) *clusterMemo {
	m := &clusterMemo{byKey: make(map[string]memoCluster, len(built))}
	for k, c := range built {
		if d, ok := digests[c.GetName()]; ok {
			m.byKey[k] = memoCluster{cluster: c, digest: d}
		}
	}
	return m
}

func (m *clusterMemo) get(key string) (memoCluster, bool) {
	if m == nil {
		return memoCluster{}, false
	}
	c, ok := m.byKey[key]
	return c, ok
}

// clusterKey is everything hostCluster and passthroughCluster read, as a
// string: the kind of cluster, the host, the port, and the entry's name,
// resolution and endpoints. Options are not in it: a Server's are fixed.
// A port that originates TLS (or would, and cannot) is not memoized
// (false): its settings come from a DestinationRule, and such ports are
// few. TestClusterKeyCoversTheModel fails when the model grows a field,
// so that whoever adds one decides whether the key needs it.
func clusterKey(kind, host string, hp serviceentry.HostPort) (string, bool) {
	if hp.TLS != nil {
		return "", false
	}
	e := hp.Entry
	var b strings.Builder
	b.Grow(128)
	for _, s := range []string{kind, host, strconv.FormatUint(uint64(hp.Number), 10), string(hp.Protocol), hp.Name,
		strconv.FormatUint(uint64(hp.TargetPort), 10), e.Ref.Namespace, e.Ref.Name, string(e.Resolution)} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	for _, ep := range e.Endpoints {
		b.WriteString(ep.Address)
		b.WriteByte(0)
		b.WriteString(strconv.FormatUint(uint64(ep.Weight), 10))
		names := make([]string, 0, len(ep.Ports))
		for n := range ep.Ports {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			b.WriteByte(0)
			b.WriteString(n)
			b.WriteByte('=')
			b.WriteString(strconv.FormatUint(uint64(ep.Ports[n]), 10))
		}
		b.WriteByte(1)
	}
	return b.String(), true
}

// memoized returns the cluster of key from the memo, or builds it. Either
// way it is recorded as built by this translation, and a reused cluster's
// digest is known, so it is not marshalled again.
func (t *translator) memoized(kind, host string, hp serviceentry.HostPort, build func() *clusterv3.Cluster) *clusterv3.Cluster {
	key, ok := clusterKey(kind, host, hp)
	if !ok || t.hasSelfEndpoint(hp) {
		// Whether an endpoint is one of the gateway's own listeners
		// depends on the listeners too: such rare clusters are built anew.
		return build()
	}
	if c, ok := t.built[key]; ok {
		return c
	}
	var c *clusterv3.Cluster
	if m, ok := t.memo.get(key); ok {
		c = m.cluster
		t.known[c] = m.digest
	} else {
		c = build()
	}
	t.built[key] = c
	return c
}

// hasSelfEndpoint reports whether a STATIC endpoint of hp's entry is on
// one of the gateway's own addresses.
func (t *translator) hasSelfEndpoint(hp serviceentry.HostPort) bool {
	if hp.Entry.Resolution != serviceentry.ResolutionStatic || len(t.o.Guard.Self) == 0 {
		return false
	}
	for _, ep := range hp.Entry.Endpoints {
		if ip, err := netip.ParseAddr(ep.Address); err == nil && t.o.Guard.IsSelf(ip) {
			return true
		}
	}
	return false
}
