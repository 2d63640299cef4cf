package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// validator is what protoc-gen-validate generates on every Envoy message.
type validator interface{ ValidateAll() error }

// Validate runs every resource's generated ValidateAll, so an invalid
// resource is caught here rather than NACKed by Envoy.
func (r *Resources) Validate() error { return r.validateChanged(nil, nil) }

// Version is a digest of the resources' deterministic encoding: equal
// content, equal version.
func (r *Resources) Version() string {
	v, _ := r.digests()
	return v
}

// digests returns Version and, by type URL, each resource's own digest:
// the per-resource versions of delta xDS, with which a gateway is sent
// only the resources whose content changed. The version is a digest of
// every resource's type, name and digest, in order. Resources are
// marshalled on every core: at 10,000 entries this is most of a publish.
func (r *Resources) digests() (string, map[string]map[string]string) {
	msgs := r.messages()
	sums := make([]string, len(msgs))
	workers := runtime.GOMAXPROCS(0)
	chunk := (len(msgs) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(msgs); lo += chunk {
		hi := min(lo+chunk, len(msgs))
		wg.Go(func() {
			opts := proto.MarshalOptions{Deterministic: true}
			var buf []byte
			for i := lo; i < hi; i++ {
				if d, ok := r.known[msgs[i]]; ok {
					sums[i] = d // reused from the last publish: unchanged
					continue
				}
				var err error
				buf, err = opts.MarshalAppend(buf[:0], msgs[i])
				if err != nil {
					panic(fmt.Sprintf("xds: encoding %T: %v", msgs[i], err))
				}
				sum := sha256.Sum256(buf)
				sums[i] = hex.EncodeToString(sum[:12])
			}
		})
	}
	wg.Wait()
	whole := sha256.New()
	each := map[string]map[string]string{}
	var line []byte
	for i, m := range msgs {
		typ, n := r.key(m)
		line = append(append(append(append(append(append(line[:0], typ...), '|'), n...), '|'), sums[i]...), '\n')
		whole.Write(line)
		byName := each[typ]
		if byName == nil {
			byName = make(map[string]string, r.count(typ))
			each[typ] = byName
		}
		byName[n] = sums[i]
	}
	return hex.EncodeToString(whole.Sum(nil)[:8]), each
}

// count is about how many resources key files under typ: a size hint.
func (r *Resources) count(typ string) int {
	switch typ {
	case resourcev3.ListenerType:
		return len(r.Listeners)
	case resourcev3.RouteType:
		return len(r.Routes)
	case resourcev3.ClusterType:
		return len(r.Clusters) - r.onDemand.n
	case onDemandDigests:
		return r.onDemand.n
	case resourcev3.ExtensionConfigType:
		return len(r.Extensions)
	}
	return len(r.Secrets)
}

// validateChanged is Validate for the resources whose digest is not the
// one in published (nil: all of them): a resource already published was
// validated then.
func (r *Resources) validateChanged(published, now map[string]map[string]string) error {
	for _, m := range r.messages() {
		if _, reused := r.known[m]; reused && published != nil {
			continue // the last publish's own message, validated then
		}
		typ, n := r.key(m)
		if d, ok := published[typ][n]; ok && d == now[typ][n] {
			continue
		}
		if err := m.(validator).ValidateAll(); err != nil {
			return fmt.Errorf("xds: %T %q: %w", m, n, err)
		}
	}
	return nil
}

// key is how digests file a resource: by type URL and name, the
// on-demand clusters apart (onDemandDigests), as no ADS type carries them,
// and the secrets only they name (onDemandSecretDigests): a gateway asks
// for those only once it holds such a cluster, so no version can wait for
// them.
func (r *Resources) key(m proto.Message) (string, string) {
	typ, n := typeURL(m), name(m)
	switch {
	case typ == resourcev3.ClusterType && r.onDemand.has(n):
		typ = onDemandDigests
	case typ == resourcev3.SecretType && r.onDemand.on && !r.coreSecrets[n]:
		typ = onDemandSecretDigests
	}
	return typ, n
}

// onDemandClusters are the on-demand clusters by name.
func (r *Resources) onDemandClusters() map[string]*clusterv3.Cluster {
	out := make(map[string]*clusterv3.Cluster, r.onDemand.n)
	for _, c := range r.Clusters {
		if r.onDemand.has(c.Name) {
			out[c.Name] = c
		}
	}
	return out
}

func typeURL(m proto.Message) string {
	switch m.(type) { // the resources' types, without building the string
	case *listenerv3.Listener:
		return resourcev3.ListenerType
	case *routev3.RouteConfiguration:
		return resourcev3.RouteType
	case *clusterv3.Cluster:
		return resourcev3.ClusterType
	case *tlsv3.Secret:
		return resourcev3.SecretType
	case *corev3.TypedExtensionConfig:
		return resourcev3.ExtensionConfigType
	}
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// Snapshot packs the resources for go-control-plane's cache and checks that
// every route and cluster a listener names is present.
func (r *Resources) Snapshot(version string) (*cachev3.Snapshot, error) {
	return r.snapshot(version, nil)
}

// snapshot is Snapshot with the per-resource versions (digests) already
// known, so the cache need not marshal every resource again for delta xDS.
func (r *Resources) snapshot(version string, versions map[string]map[string]string) (*cachev3.Snapshot, error) {
	res := map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {},
		resourcev3.RouteType:    {},
		resourcev3.ClusterType:  {},
	}
	for _, l := range r.Listeners {
		res[resourcev3.ListenerType] = append(res[resourcev3.ListenerType], l)
	}
	for _, rc := range r.Routes {
		res[resourcev3.RouteType] = append(res[resourcev3.RouteType], rc)
	}
	for _, c := range r.Clusters {
		if !r.onDemand.has(c.Name) { // those are served by onDemand
			res[resourcev3.ClusterType] = append(res[resourcev3.ClusterType], c)
		}
	}
	// Secrets is always present, if empty, so every type carries the
	// snapshot's version: a delta response that only removes secrets
	// then names the version it belongs to.
	res[resourcev3.ExtensionConfigType] = []types.Resource{}
	for _, e := range r.Extensions {
		res[resourcev3.ExtensionConfigType] = append(res[resourcev3.ExtensionConfigType], e)
	}
	res[resourcev3.SecretType] = []types.Resource{}
	for _, sec := range r.Secrets {
		res[resourcev3.SecretType] = append(res[resourcev3.SecretType], sec)
	}
	s, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		return nil, fmt.Errorf("xds: snapshot: %w", err)
	}
	if extra := versions[onDemandSecretDigests]; len(extra) > 0 {
		// The snapshot serves every secret by SDS, with its version.
		merged := make(map[string]map[string]string, len(versions))
		for t, m := range versions {
			merged[t] = m
		}
		secrets := make(map[string]string, len(versions[resourcev3.SecretType])+len(extra))
		for n, v := range versions[resourcev3.SecretType] {
			secrets[n] = v
		}
		for n, v := range extra {
			secrets[n] = v
		}
		merged[resourcev3.SecretType] = secrets
		versions = merged
	}
	s.VersionMap = versions
	if r.reusedListenersAndRoutes() {
		// Every listener and route table is the last publish's, which was
		// found consistent: checking again unpacks every listener's
		// filters for nothing.
		return s, nil
	}
	if err := s.Consistent(); err != nil {
		return nil, fmt.Errorf("xds: snapshot %s is inconsistent: %w", version, err)
	}
	return s, nil
}

// reusedListenersAndRoutes reports whether every listener and route table
// was reused from the last publish, and the route tables are all of its.
func (r *Resources) reusedListenersAndRoutes() bool {
	if r.last == nil || len(r.Routes) != len(r.last[resourcev3.RouteType]) || len(r.Listeners) != len(r.last[resourcev3.ListenerType]) {
		return false
	}
	for _, l := range r.Listeners {
		if _, ok := r.known[l]; !ok {
			return false
		}
	}
	for _, rc := range r.Routes {
		if _, ok := r.known[rc]; !ok {
			return false
		}
		if _, ok := r.last[resourcev3.RouteType][rc.Name]; !ok {
			return false
		}
	}
	return true
}

// messages are every resource, secrets last: the version covers a secret's
// content (through a digest), so a rotated certificate is a new version.
func (r *Resources) messages() []proto.Message {
	out := make([]proto.Message, 0, len(r.Listeners)+len(r.Routes)+len(r.Clusters)+len(r.Extensions)+len(r.Secrets))
	for _, l := range r.Listeners {
		out = append(out, l)
	}
	for _, rc := range r.Routes {
		out = append(out, rc)
	}
	for _, c := range r.Clusters {
		out = append(out, c)
	}
	for _, e := range r.Extensions {
		out = append(out, e)
	}
	for _, sec := range r.Secrets {
		out = append(out, sec)
	}
	return out
}

func name(m proto.Message) string {
	if n, ok := m.(interface{ GetName() string }); ok {
		return n.GetName()
	}
	return ""
}
