package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// validator is what protoc-gen-validate generates on every Envoy message.
type validator interface{ ValidateAll() error }

// Validate runs every resource's generated ValidateAll, so an invalid
// resource is caught here rather than NACKed by Envoy.
func (r *Resources) Validate() error {
	for _, m := range r.messages() {
		if err := m.(validator).ValidateAll(); err != nil {
			return fmt.Errorf("xds: %T %q: %w", m, name(m), err)
		}
	}
	return nil
}

// Version is a digest of the resources' deterministic encoding: equal
// content, equal version.
func (r *Resources) Version() string {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, m := range r.messages() {
		b, err := opts.Marshal(m)
		if err != nil {
			panic(fmt.Sprintf("xds: encoding %T: %v", m, err))
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Snapshot packs the resources for go-control-plane's cache and checks that
// every route and cluster a listener names is present.
func (r *Resources) Snapshot(version string) (*cachev3.Snapshot, error) {
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
		res[resourcev3.ClusterType] = append(res[resourcev3.ClusterType], c)
	}
	if len(r.Secrets) > 0 {
		for _, sec := range r.Secrets {
			res[resourcev3.SecretType] = append(res[resourcev3.SecretType], sec)
		}
	}
	s, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		return nil, fmt.Errorf("xds: snapshot: %w", err)
	}
	if err := s.Consistent(); err != nil {
		return nil, fmt.Errorf("xds: snapshot %s is inconsistent: %w", version, err)
	}
	return s, nil
}

// messages are every resource, secrets last: the version covers a secret's
// content (through a digest), so a rotated certificate is a new version.
func (r *Resources) messages() []proto.Message {
	out := make([]proto.Message, 0, len(r.Listeners)+len(r.Routes)+len(r.Clusters)+len(r.Secrets))
	for _, l := range r.Listeners {
		out = append(out, l)
	}
	for _, rc := range r.Routes {
		out = append(out, rc)
	}
	for _, c := range r.Clusters {
		out = append(out, c)
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
