package e2e

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/decision"
)

// The ServiceEntries, DestinationRules, Gateway and VirtualService of
// Istio's egress tasks, in the form those tasks apply them (names and hosts
// as there). Every name is answered by the test's own DNS server with a
// loopback address: nothing leaves the machine.
const (
	taskExternalServices = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin-ext
spec:
  hosts:
  - httpbin.org
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: DNS
  location: MESH_EXTERNAL
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: google
spec:
  hosts:
  - www.google.com
  ports:
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
  location: MESH_EXTERNAL
`
	taskTLSOrigination = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: edition-cnn-com
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
    targetPort: 443
  - number: 443
    name: https-port
    protocol: HTTPS
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: edition-cnn-com
spec:
  host: edition.cnn.com
  trafficPolicy:
    portLevelSettings:
    - port:
        number: 80
      tls:
        mode: SIMPLE # initiates HTTPS when accessing edition.cnn.com
`
	taskWildcard = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: wikipedia
spec:
  hosts:
  - "*.wikipedia.org"
  ports:
  - number: 443
    name: https
    protocol: HTTPS
`
	taskEgressGateway = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - edition.cnn.com
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - istio-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        port:
          number: 80
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: 80
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: 80
      weight: 100
`
)

// TestIstioEgressTasks: the YAML of Istio's egress tasks (external services
// under REGISTRY_ONLY, TLS origination, wildcard hosts, the egress gateway)
// applies unchanged to a real API server and behaves at the egressd gateway
// as the tasks describe. The egress gateway task's Gateway and
// VirtualService are accepted by the API server and left alone by egressd
// (it is the egress gateway): its traffic goes through the gateway anyway.
func TestIstioEgressTasks(t *testing.T) {
	skipShort(t)
	names := []string{"www.google.com", "edition.cnn.com", "en.wikipedia.org", "de.wikipedia.org"}
	ip, _ := realPortUpstreams(t, names...)
	resolver := dnsServerTo(t, ".", net.ParseIP(ip))

	// The upstreams' certificates are self-signed; the gateway's system
	// trust bundle (SSL_CERT_FILE, as Go and egressd read it) is that
	// certificate here, as a public CA's would be in a real cluster.
	caFile := filepath.Join(t.TempDir(), "upstream.pem")
	writeUpstreamCert(t, ip, "edition.cnn.com", caFile)
	t.Setenv("SSL_CERT_FILE", caFile)

	k := startKube(t)
	k.installIstioCRDs(t)
	g := startGateway(t, t.TempDir(), append(allowUpstreams(ip), "--source", "kubernetes", "--kubeconfig", k.Kubeconfig, "--gateway-dns", resolver, "--no-envoy-access-log")...)

	get := func(rawURL string) (int, string, error) {
		u := strings.TrimPrefix(strings.TrimPrefix(rawURL, "http://"), "https://")
		port := 80
		if strings.HasPrefix(rawURL, "https://") {
			port = 443
		}
		host := strings.SplitN(u, "/", 2)[0]
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{ServerName: host, InsecureSkipVerify: true},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, g.Addr(port))
			},
		}}
		resp, err := client.Get(rawURL)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	eventually(t, 60*time.Second, "gateway serving from the cluster", func() error {
		if code, _, err := get("http://httpbin.org/headers"); err != nil || code != 403 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})

	// Accessing external services: blocked until the ServiceEntries exist.
	if _, _, err := get("https://www.google.com/"); err == nil {
		t.Error("REGISTRY_ONLY: www.google.com reachable without a ServiceEntry")
	}
	k.applyYAML(t, taskExternalServices)
	eventually(t, 5*time.Second, "httpbin.org through its ServiceEntry", func() error {
		code, body, err := get("http://httpbin.org/headers")
		if err != nil || code != 200 || !strings.Contains(body, "host httpbin.org") {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	if code, body, err := get("https://www.google.com/"); err != nil || code != 200 || !strings.Contains(body, "hello over TLS from www.google.com") {
		t.Errorf("www.google.com through its ServiceEntry: %d %q %v", code, body, err)
	}

	// Egress TLS origination: plain http://edition.cnn.com reaches the
	// upstream over TLS; https:// still passes through.
	k.applyYAML(t, taskTLSOrigination)
	eventually(t, 5*time.Second, "TLS origination to edition.cnn.com", func() error {
		code, body, err := get("http://edition.cnn.com/politics")
		if err != nil || code != 200 || !strings.Contains(body, "hello over TLS from edition.cnn.com") {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	if code, body, err := get("https://edition.cnn.com/politics"); err != nil || code != 200 || !strings.Contains(body, "edition.cnn.com") {
		t.Errorf("https://edition.cnn.com: %d %q %v", code, body, err)
	}

	// Wildcard hosts: any *.wikipedia.org by SNI.
	k.applyYAML(t, taskWildcard)
	eventually(t, 5*time.Second, "wildcard *.wikipedia.org", func() error {
		for _, h := range []string{"en.wikipedia.org", "de.wikipedia.org"} {
			code, body, err := get("https://" + h + "/wiki/Main_Page")
			if err != nil || code != 200 || !strings.Contains(body, h) {
				return fmt.Errorf("%s: %d %q %v", h, code, body, err)
			}
		}
		return nil
	})

	// Egress gateway: Gateway and VirtualService apply unchanged; egressd
	// is the egress gateway, so edition.cnn.com keeps working through it.
	k.applyYAML(t, taskEgressGateway)
	time.Sleep(500 * time.Millisecond)
	if code, _, err := get("http://edition.cnn.com/politics"); err != nil || code != 200 {
		t.Errorf("edition.cnn.com with the egress gateway task applied: %d %v", code, err)
	}
}

// writeUpstreamCert saves the certificate the upstream at ip:443 shows
// for name, so the gateway can trust it as if a public CA had issued it.
func writeUpstreamCert(t *testing.T, ip, name, path string) {
	t.Helper()
	conn, err := tls.Dial("tcp", net.JoinHostPort(ip, "443"), &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out []byte
	for _, c := range conn.ConnectionState().PeerCertificates {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// taskEgressGatewayRoutes are the Istio tasks that route at the egress
// gateway, as the docs apply them: plain HTTP to edition.cnn.com port 80
// goes out on port 443 with TLS originated (egress gateway TLS
// origination), and every *.wikipedia.org SNI goes to www.wikipedia.org
// (wildcard hosts through the egress gateway, a single hosting server).
const taskEgressGatewayRoutes = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn, namespace: default}
spec:
  hosts: [edition.cnn.com]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: https, protocol: HTTPS}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: https-port-for-tls-origination, protocol: HTTPS}
    hosts: [edition.cnn.com]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-cnn-through-egress-gateway, namespace: default}
spec:
  hosts: [edition.cnn.com]
  gateways: [istio-egressgateway, mesh]
  http:
  - match:
    - gateways: [mesh]
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: cnn
        port: {number: 80}
      weight: 100
  - match:
    - gateways: [istio-egressgateway]
      port: 80
    route:
    - destination:
        host: edition.cnn.com
        port: {number: 443}
      weight: 100
    timeout: 10s
    retries: {attempts: 2, perTryTimeout: 3s}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: originate-tls-for-edition-cnn-com, namespace: default}
spec:
  host: edition.cnn.com
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: www-wikipedia, namespace: default}
spec:
  hosts: [www.wikipedia.org]
  ports:
  - {number: 443, name: https, protocol: HTTPS}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-wikipedia-through-egress-gateway, namespace: default}
spec:
  hosts: ["*.wikipedia.org"]
  gateways: [mesh, istio-egressgateway]
  tls:
  - match:
    - gateways: [mesh]
      port: 443
      sniHosts: ["*.wikipedia.org"]
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: wikipedia
        port: {number: 443}
      weight: 100
  - match:
    - gateways: [istio-egressgateway]
      port: 443
      sniHosts: ["*.wikipedia.org"]
    route:
    - destination:
        host: www.wikipedia.org
        port: {number: 443}
      weight: 100
`

// TestIstioEgressGatewayRouting: the VirtualServices of Istio's egress
// gateway tasks are applied at egressd's gateway: the HTTP request to
// port 80 reaches the upstream over TLS on 443, and a *.wikipedia.org
// name no ServiceEntry lists is passed through to www.wikipedia.org, each
// decision naming the ServiceEntry of the destination.
func TestIstioEgressGatewayRouting(t *testing.T) {
	skipShort(t)
	ip, _ := realPortUpstreams(t, "edition.cnn.com", "www.wikipedia.org", "en.wikipedia.org")
	resolver := dnsServerTo(t, ".", net.ParseIP(ip))
	caFile := filepath.Join(t.TempDir(), "upstream.pem")
	writeUpstreamCert(t, ip, "edition.cnn.com", caFile)
	t.Setenv("SSL_CERT_FILE", caFile)
	dir := t.TempDir()
	writeFile(t, dir, "tasks.yaml", taskEgressGatewayRoutes)
	g := startGateway(t, dir, append(allowUpstreams(ip), "--gateway-dns", resolver, "--no-envoy-access-log")...)

	eventually(t, 30*time.Second, "HTTP on port 80 routed to 443 with TLS originated", func() error {
		code, body, err := g.getVia("http://edition.cnn.com/politics")
		if err != nil || code != 200 || !strings.Contains(body, "hello over TLS from edition.cnn.com") {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	g.waitDecision(t, "the routed request", url.Values{"host": {"edition.cnn.com"}, "verdict": {"allow"}, "layer": {"http"}}, func(d decision.Decision) error {
		if d.ServiceEntry != "default/cnn" {
			return fmt.Errorf("serviceentry %q", d.ServiceEntry)
		}
		return nil
	})

	tlsGet := func(host string) (int, string, error) {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{ServerName: host, InsecureSkipVerify: true},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, g.Addr(443))
			},
		}}
		resp, err := client.Get("https://" + host + "/wiki/Main_Page")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	eventually(t, 10*time.Second, "en.wikipedia.org passed through to www.wikipedia.org", func() error {
		code, body, err := tlsGet("en.wikipedia.org")
		if err != nil || code != 200 || !strings.Contains(body, "en.wikipedia.org") {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	g.waitDecision(t, "the routed connection", url.Values{"host": {"en.wikipedia.org"}, "verdict": {"allow"}, "layer": {"tls"}}, func(d decision.Decision) error {
		if d.ServiceEntry != "default/www-wikipedia" {
			return fmt.Errorf("serviceentry %q", d.ServiceEntry)
		}
		return nil
	})
	// A name neither the VirtualService nor a ServiceEntry covers stays closed.
	if _, _, err := tlsGet("en.wikipedia.com"); err == nil {
		t.Error("en.wikipedia.com reachable though nothing lists it")
	}
}
