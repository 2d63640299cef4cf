package authz

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/egressd/egressd/serviceentry"
)

func TestExportTo(t *testing.T) {
	const yaml = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: public, namespace: shared}
spec:
  hosts: [public.example]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: team-a}
spec:
  hosts: [private.example, private2.example]
  exportTo: [".", team-b]
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hidden, namespace: team-a}
spec:
  hosts: [hidden.example]
  exportTo: ["~"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
`
	c, problems := serviceentry.ParseConfig("e.yaml", []byte(yaml))
	a := serviceentry.CompileConfig(c, problems)
	got := ExportTo(a)
	want := []*serviceentry.AuthorizationPolicy{
		{
			Ref:    serviceentry.Ref{Kind: "AuthorizationPolicy", Namespace: "team-a", Name: "exportto.hidden"},
			Action: serviceentry.AuthzDeny,
			Rules:  []serviceentry.AuthzRule{{To: []serviceentry.AuthzOperation{{Hosts: []string{"hidden.example"}}}}},
		},
		{
			Ref:    serviceentry.Ref{Kind: "AuthorizationPolicy", Namespace: "team-a", Name: "exportto.private"},
			Action: serviceentry.AuthzDeny,
			Rules: []serviceentry.AuthzRule{{
				From: []serviceentry.AuthzSource{{NotNamespaces: []string{"team-a", "team-b"}}},
				To:   []serviceentry.AuthzOperation{{Hosts: []string{"private.example", "private2.example"}}},
			}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The policies translate like any other (and pass Envoy's validation).
	for _, f := range HTTPFilters(got) {
		if err := f.ValidateAll(); err != nil {
			t.Fatal(err)
		}
	}
	if se, ok := IsExportPolicy("team-a/exportto.private"); !ok || se != "team-a/private" {
		t.Errorf("IsExportPolicy = %q, %v", se, ok)
	}
	if _, ok := IsExportPolicy("team-a/private"); ok {
		t.Error("an ordinary policy taken for an exportTo one")
	}
}
