package serviceentry

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestPolicyScope(t *testing.T) {
	policy := func(ns, name, selector string) string {
		sel := ""
		if selector != "" {
			sel = "  selector: {matchLabels: {" + selector + "}}\n"
		}
		return fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: %s, namespace: %s}\nspec:\n%s  action: DENY\n  rules: [{to: [{operation: {hosts: [x.example.com]}}]}]\n", name, ns, sel)
	}
	docs := []string{
		policy("istio-system", "mesh-wide", ""),
		policy("istio-system", "root-selects-gateway", "app: istio-egressgateway"),
		policy("istio-system", "root-selects-other", "app: reviews"),
		policy("egress", "namespace-wide", ""),
		policy("egress", "selects-gateway", "app: istio-egressgateway, istio: egressgateway"),
		policy("egress", "selects-other", "app: ratings"),
		policy("bookinfo", "app-namespace", ""),
		policy("bookinfo", "app-selects-gateway-labels", "app: istio-egressgateway"),
	}
	a := CompileYAML("p.yaml", []byte(strings.Join(docs, "---\n")))
	if errs := a.Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	scope := &PolicyScope{Workload: Workload{Namespace: "egress", Labels: map[string]string{"app": "istio-egressgateway", "istio": "egressgateway"}}}
	applied, ignored := a.AuthorizationPoliciesFor(scope)
	var got []string
	for _, p := range applied {
		got = append(got, p.Ref.String())
	}
	want := "egress/namespace-wide egress/selects-gateway istio-system/mesh-wide istio-system/root-selects-gateway"
	if strings.Join(got, " ") != want {
		t.Errorf("applied: %v, want %s", got, want)
	}
	whys := map[string]string{}
	for _, n := range ignored {
		whys[n.Ref.String()] = n.Why
	}
	for name, why := range map[string]string{
		"istio-system/root-selects-other":     "does not match the gateway's labels",
		"egress/selects-other":                "does not match the gateway's labels",
		"bookinfo/app-namespace":              "it is for workloads of bookinfo",
		"bookinfo/app-selects-gateway-labels": "neither the gateway's (egress) nor the mesh root (istio-system)",
	} {
		if !strings.Contains(whys[name], why) {
			t.Errorf("%s: why %q, want it to say %q", name, whys[name], why)
		}
	}
	if len(ignored) != 4 {
		t.Errorf("ignored %d policies, want 4: %+v", len(ignored), ignored)
	}
	if all, none := a.AuthorizationPoliciesFor(nil); len(all) != len(docs) || none != nil {
		t.Errorf("without a scope: %d applied, %d ignored; want every one applied", len(all), len(none))
	}
}

func TestPeerAuthenticationPrecedence(t *testing.T) {
	peer := func(ns, name, selector, mode string) string {
		sel := ""
		if selector != "" {
			sel = "  selector: {matchLabels: {" + selector + "}}\n"
		}
		return fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: %s, namespace: %s}\nspec:\n%s  mtls: {mode: %s}\n", name, ns, sel, mode)
	}
	a := CompileYAML("p.yaml", []byte(strings.Join([]string{
		peer("istio-system", "a-mesh", "", "STRICT"),
		peer("egress", "b-namespace", "", "PERMISSIVE"),
		peer("egress", "c-workload", "app: gw", "DISABLE"),
		peer("other", "d-other", "", "DISABLE"),
		peer("istio-system", "e-root-workload", "app: gw", "DISABLE"),
	}, "---\n")))
	if errs := a.Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	scope := &PolicyScope{Workload: Workload{Namespace: "egress", Labels: map[string]string{"app": "gw"}}}
	applied, ignored := a.PeerAuthenticationsFor(scope)
	var got []string
	for _, p := range applied {
		got = append(got, p.Ref.Name)
	}
	if strings.Join(got, " ") != "c-workload b-namespace a-mesh" {
		t.Errorf("applied, most specific first: %v", got)
	}
	if len(ignored) != 2 {
		t.Errorf("ignored: %+v, want d-other and e-root-workload (a root-namespace selector is for the root namespace's workloads)", ignored)
	}
}

func TestParseLabels(t *testing.T) {
	l, err := ParseLabels(" app=gw , istio=egressgateway,")
	if err != nil || len(l) != 2 || l["app"] != "gw" || l["istio"] != "egressgateway" {
		t.Fatalf("ParseLabels: %v %v", l, err)
	}
	if _, err := ParseLabels("app"); err == nil {
		t.Fatal("a label without = was accepted")
	}
}

// TestExportedTo: ExportedTo answers what ExportNamespaces lists.
func TestExportedTo(t *testing.T) {
	for _, exportTo := range [][]string{nil, {"*"}, {"."}, {"~"}, {".", "team-b"}, {"team-b", "*"}, {"team-a", "team-a"}} {
		e := &Entry{Ref: Ref{Namespace: "team-a"}, ExportTo: exportTo}
		everywhere, namespaces := e.ExportNamespaces()
		for _, ns := range []string{"team-a", "team-b", "team-c"} {
			want := everywhere || slices.Contains(namespaces, ns)
			if got := e.ExportedTo(ns); got != want {
				t.Errorf("exportTo %q, namespace %s: ExportedTo %v, ExportNamespaces says %v", exportTo, ns, got, want)
			}
		}
	}
}
