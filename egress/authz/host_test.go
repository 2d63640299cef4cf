package authz

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/egressd/egressd/serviceentry"
)

func TestForHost(t *testing.T) {
	ref := serviceentry.Ref{Namespace: "egress", Name: "p"}
	op := func(hosts, notHosts []string, methods ...string) serviceentry.AuthzOperation {
		return serviceentry.AuthzOperation{Hosts: hosts, NotHosts: notHosts, Methods: methods}
	}
	from := []serviceentry.AuthzSource{{Principals: []string{"cluster.local/ns/a/sa/b"}}}
	in := []*serviceentry.AuthorizationPolicy{{Ref: ref, Action: serviceentry.AuthzAllow, Rules: []serviceentry.AuthzRule{
		{From: from, To: []serviceentry.AuthzOperation{op([]string{"api.partner.test"}, nil)}},               // kept, hosts decided
		{From: from, To: []serviceentry.AuthzOperation{op([]string{"other.test"}, nil)}},                     // dropped: not this host
		{From: from, To: []serviceentry.AuthzOperation{op([]string{"*.partner.test"}, nil, "GET")}},          // kept, GET stays
		{From: from, To: []serviceentry.AuthzOperation{op(nil, []string{"API.partner.test"})}},               // dropped: excluded host
		{From: from, To: []serviceentry.AuthzOperation{op(nil, []string{"x.test"}), op([]string{"y"}, nil)}}, // one operation kept
		{From: from}, // no operations: any, kept as it is
	}}}
	got := ForHost(in, "api.partner.test")
	want := []serviceentry.AuthzRule{
		{From: from, To: []serviceentry.AuthzOperation{{}}},
		{From: from, To: []serviceentry.AuthzOperation{{Methods: []string{"GET"}}}},
		{From: from, To: []serviceentry.AuthzOperation{{}}},
		{From: from},
	}
	if diff := cmp.Diff(want, got[0].Rules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if len(in[0].Rules) != 6 || in[0].Rules[0].To[0].Hosts == nil {
		t.Error("ForHost modified its input")
	}
	// For another host: the two notHosts rules (it is not excluded) and the
	// rule without operations.
	if got := ForHost(in, "unrelated.test"); len(got[0].Rules) != 3 || len(got[0].Rules[2].To) != 0 {
		t.Errorf("for another host: %+v", got[0].Rules)
	}
}
