package dashboard

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/egressd/egressd/egress/gateway"
	"github.com/egressd/egressd/serviceentry"
)

// TestGatewayView: the model in force, its chains in words, as JSON and
// as YAML.
func TestGatewayView(t *testing.T) {
	a := serviceentry.CompileYAML("case.yaml", []byte(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: ns}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
`))
	g, err := gateway.Plan(a, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(Config{Gateway: func() *gateway.Gateway { return g }})
	w := get(t, h, "GET", "/api/v1/gateway", nil)
	var v GatewayView
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Loaded || v.Clusters != len(g.Clusters) || v.Gateway == nil || len(v.Rows) != len(g.Rows()) {
		t.Fatalf("view %+v", v)
	}
	if r := v.Rows[len(v.Rows)-2]; r.Chain != "tls|443|by_sni" || r.Listener != "egress_443" {
		t.Errorf("row %+v", r)
	}
	y := get(t, h, "GET", "/api/v1/gateway?format=yaml", nil)
	if ct := y.Header().Get("Content-Type"); ct != "application/yaml" || !strings.Contains(y.Body.String(), "name: outbound|443|tls|api.example.com") {
		t.Errorf("YAML %q:\n%s", ct, y.Body)
	}
}
