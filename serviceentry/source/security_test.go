package source

import (
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLoadDirSecurityPolicies: AuthorizationPolicies and
// PeerAuthentications in the folder reach the Allowlist, sorted, with
// invalid policies in their fail-closed form.
func TestLoadDirSecurityPolicies(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "entries.yaml", seYAML("api", "api.example.com"))
	writeFile(t, dir, "security/policies.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-ci, namespace: egress}
spec:
  rules:
  - from: [{source: {principals: [cluster.local/ns/ci/sa/builder]}}]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: broken, namespace: egress}
spec:
  action: DENY
  rules:
  - when: [{key: remote.ip, values: [10.0.0.1]}]
`)
	writeFile(t, dir, "security/mtls.yaml", `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: egress}
spec: {mtls: {mode: STRICT}}
`)
	a, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range a.AuthorizationPolicies() {
		got = append(got, p.Ref.String()+" "+string(p.Action)+" invalid="+strconv.FormatBool(p.Invalid != ""))
	}
	for _, p := range a.PeerAuthentications() {
		got = append(got, p.Ref.String()+" "+string(p.Mode))
	}
	want := []string{"egress/allow-ci ALLOW invalid=false", "egress/broken DENY invalid=true", "egress/strict STRICT"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("policies (-want +got):\n%s", d)
	}
}
