package authz

import (
	"slices"
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

// TestSidecarScope: a namespace's Sidecar limits its callers to the hosts
// it lists; the root namespace's Sidecar limits every other namespace,
// "./*" meaning the caller's own namespace's hosts.
func TestSidecarScope(t *testing.T) {
	const yaml = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: stripe, namespace: payments}
spec:
  hosts: [api.stripe.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shared, namespace: istio-system}
spec:
  hosts: [pypi.org]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: github, namespace: ci}
spec:
  hosts: [github.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  egress: [{hosts: ["./*", "istio-system/*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: web}
spec:
  egress: [{hosts: ["payments/api.stripe.com"]}]
`
	c, problems := serviceentry.ParseConfig("s.yaml", []byte(yaml))
	a := serviceentry.CompileConfig(c, problems)
	if errs := a.Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	got := SidecarScope(a, "istio-system", nil)
	want := []*serviceentry.AuthorizationPolicy{
		{
			Ref:    serviceentry.Ref{Kind: "AuthorizationPolicy", Namespace: "web", Name: "sidecar.default"},
			Action: serviceentry.AuthzDeny,
			Rules: []serviceentry.AuthzRule{{
				From: []serviceentry.AuthzSource{{Namespaces: []string{"web"}}},
				To:   []serviceentry.AuthzOperation{{Hosts: []string{"github.com", "pypi.org"}}},
			}},
		},
		{
			Ref:    serviceentry.Ref{Kind: "AuthorizationPolicy", Namespace: "istio-system", Name: "sidecar.default"},
			Action: serviceentry.AuthzDeny,
			Rules: []serviceentry.AuthzRule{
				{
					From: []serviceentry.AuthzSource{{NotNamespaces: []string{"ci", "web"}}},
					To:   []serviceentry.AuthzOperation{{Hosts: []string{"github.com"}}},
				},
				{
					From: []serviceentry.AuthzSource{{NotNamespaces: []string{"payments", "web"}}},
					To:   []serviceentry.AuthzOperation{{Hosts: []string{"api.stripe.com"}}},
				},
			},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		namespace, host, reason string
	}{
		{"web", "api.stripe.com", ""},
		{"web", "pypi.org", "sidecar_scope"},
		{"payments", "api.stripe.com", ""},
		{"payments", "pypi.org", ""},
		{"payments", "github.com", "sidecar_scope"},
		{"ci", "github.com", ""},
	} {
		h := a.Match(tc.host)
		reason, detail := a.Reachable(tc.namespace, "istio-system", tc.host, h.Ports[0].Entry)
		if reason != tc.reason {
			t.Errorf("%s -> %s: %q (%s), want %q", tc.namespace, tc.host, reason, detail, tc.reason)
		}
	}
	for _, f := range HTTPFilters(got) {
		if err := f.ValidateAll(); err != nil {
			t.Fatal(err)
		}
	}
	// web's Sidecar dry-run, and ci's (the root one): their rules become
	// SHADOW_DENY policies, and the root Sidecar's DENY exempts them.
	audited := SidecarScope(a, "istio-system", []string{"web", "ci"})
	var names []string
	for _, p := range audited {
		names = append(names, string(p.Action)+" "+p.Ref.String())
		if p.Action == serviceentry.AuthzDeny {
			for _, r := range p.Rules {
				if !slices.Contains(r.From[0].NotNamespaces, "web") || !slices.Contains(r.From[0].NotNamespaces, "ci") {
					t.Errorf("rule %+v does not exempt the audited namespaces", r)
				}
			}
		}
	}
	wantNames := []string{"SHADOW_DENY web/sidecar-audit.default", "SHADOW_DENY istio-system/sidecar-audit.default", "DENY istio-system/sidecar.default"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("audited policies %v, want %v", names, wantNames)
	}
	if len(HTTPFilters(audited)) == 0 || HTTPFilters(audited)[0].GetTypedConfig() == nil {
		t.Fatal("no shadow filter")
	}
	if sc, audit, ok := IsSidecarPolicy("web/sidecar.default"); !ok || audit || sc != "web/default" {
		t.Errorf("IsSidecarPolicy: %q %v %v", sc, audit, ok)
	}
	if sc, audit, ok := IsSidecarPolicy("web/sidecar-audit.default"); !ok || !audit || sc != "web/default" {
		t.Errorf("IsSidecarPolicy of a dry run: %q %v %v", sc, audit, ok)
	}
}
