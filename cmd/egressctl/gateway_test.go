package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/egressd/egressd/egress/dashboard"
	"github.com/egressd/egressd/egress/gateway"
	"github.com/egressd/egressd/serviceentry"
)

func testGateway(t *testing.T) *gateway.Gateway {
	t.Helper()
	a := serviceentry.CompileYAML("case.yaml", []byte(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: ns}
spec:
  hosts: ["*.api.example.com"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
`))
	g, err := gateway.Plan(a, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGatewayCommand(t *testing.T) {
	g := testGateway(t)
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != gatewayPath {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("format") == "yaml" {
			w.Write([]byte("ports: []\n"))
			return
		}
		json.NewEncoder(w).Encode(dashboard.NewGatewayView(g))
	})
	got := runCLI(context.Background(), "--admin", srv.URL, "gateway")
	if got.code != 0 {
		t.Fatalf("exit %d: %s", got.code, got.stderr)
	}
	lines := strings.Split(got.stdout, "\n")
	if !strings.HasPrefix(lines[0], "LISTENER") || !strings.Contains(got.stdout, "egress_443 :443") ||
		!strings.Contains(got.stdout, "tls|443|*.api.example.com") || !strings.Contains(got.stdout, "resolve the SNI, pass TLS through to it on port 443") ||
		!strings.Contains(got.stdout, "tcp|443|unlisted (default)") || !strings.Contains(got.stdout, "REGISTRY_ONLY, allowlist") {
		t.Errorf("table:\n%s", got.stdout)
	}
	if got := runCLI(context.Background(), "--admin", srv.URL, "gateway", "-o", "yaml"); got.code != 0 || got.stdout != "ports: []\n" {
		t.Errorf("yaml: exit %d %q %q", got.code, got.stdout, got.stderr)
	}
	js := runCLI(context.Background(), "--admin", srv.URL, "gateway", "-o", "json")
	var back gateway.Gateway
	if err := json.Unmarshal([]byte(js.stdout), &back); err != nil || len(back.Ports) != len(g.Ports) {
		t.Errorf("json: %v %q", err, js.stdout)
	}
	if bad := runCLI(context.Background(), "--admin", srv.URL, "gateway", "-o", "xml"); bad.code != 2 {
		t.Errorf("-o xml: exit %d", bad.code)
	}
}

func TestGatewayCommandNothingPublished(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(dashboard.NewGatewayView(nil))
	})
	got := runCLI(context.Background(), "--admin", srv.URL, "gateway")
	if got.code != 1 || !strings.Contains(got.stderr, "no gateway configuration yet") {
		t.Errorf("exit %d, stderr %q", got.code, got.stderr)
	}
}
