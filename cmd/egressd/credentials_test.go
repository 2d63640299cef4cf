package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/egressd/egressd/serviceentry/source"
)

func TestCredentialNames(t *testing.T) {
	dir := t.TempDir()
	yaml := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: apis, namespace: default}
spec:
  hosts: [a.example.com, b.example.com, c.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a, namespace: default}
spec:
  host: a.example.com
  trafficPolicy:
    portLevelSettings:
    - port: {number: 80}
      tls: {mode: MUTUAL, credentialName: client}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b, namespace: default}
spec:
  host: b.example.com
  trafficPolicy:
    portLevelSettings:
    - port: {number: 80}
      tls: {mode: SIMPLE, credentialName: ca-only}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: c, namespace: default}
spec:
  host: c.example.com
  trafficPolicy:
    portLevelSettings:
    - port: {number: 80}
      tls: {mode: MUTUAL, credentialName: client}
`
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := source.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := credentialNames(a)
	slices.Sort(got)
	if want := []string{"ca-only", "client"}; !slices.Equal(got, want) {
		t.Errorf("credentialNames = %q, want %q (problems: %v)", got, want, a.Problems())
	}
}
