package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/egress/identity"
	"github.com/egressd/egressd/egress/xds"
)

// xdsClient is one would-be client of egressd's xDS port.
type xdsClient struct {
	name  string
	creds credentials.TransportCredentials
}

// fetch opens a delta and a state-of-the-world ADS stream and returns how
// many clusters and secrets they delivered within a few seconds (an error
// when the port refused the client).
func (c xdsClient) fetch(t *testing.T, addr string) (clusters, secrets int, err error) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(c.creds))
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	node := &corev3.Node{Id: "attacker-" + c.name, Cluster: "egressd"}

	delta, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		return 0, 0, err
	}
	if err := delta.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		return 0, 0, err
	}
	if err := delta.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType,
		ResourceNamesSubscribe: []string{identity.GatewayCertSecret, identity.TrustBundleSecret}}); err != nil {
		return 0, 0, err
	}
	for clusters == 0 || secrets == 0 {
		r, err := delta.Recv()
		if err != nil {
			return clusters, secrets, err
		}
		switch r.GetTypeUrl() {
		case resourcev3.ClusterType:
			clusters += len(r.GetResources())
		case resourcev3.SecretType:
			secrets += len(r.GetResources())
		}
	}
	// State of the world too.
	sotw, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		return clusters, secrets, err
	}
	if err := sotw.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		return clusters, secrets, err
	}
	r, err := sotw.Recv()
	if err != nil {
		return clusters, secrets, err
	}
	return clusters + len(r.GetResources()), secrets, nil
}

// fabricate sends one access-log entry of a denial that never happened.
// It returns the gRPC status code of the stream: Unavailable when the
// port refused the client (the service answers nothing else: Envoy's
// streams never end).
func (c xdsClient) fabricate(addr, host string) codes.Code {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(c.creds))
	if err != nil {
		return status.Code(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	stream, err := accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx)
	if err != nil {
		return status.Code(err)
	}
	tags := map[string]string{xds.TagLayer: "http", xds.TagPort: "80", xds.TagVerdict: "deny", xds.TagReason: "not_in_registry"}
	if err := stream.Send(&accesslogv3.StreamAccessLogsMessage{
		Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: "attacker-" + c.name}, LogName: xds.ALSLogName},
		LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
			LogEntry: []*datav3.HTTPAccessLogEntry{{
				CommonProperties: &datav3.AccessLogCommon{StartTime: timestamppb.Now(), CustomTags: tags},
				Request:          &datav3.HTTPRequestProperties{Authority: host, Path: "/"},
				Response:         &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(403)},
			}},
		}},
	}); err != nil {
		return status.Code(err)
	}
	_, err = stream.CloseAndRecv()
	return status.Code(err)
}

// tlsCreds are client credentials that present pair whatever CAs the
// server asks for, and do not verify the server (the tests are about whom
// the server lets in).
func tlsCreds(pair tls.Certificate) credentials.TransportCredentials {
	return credentials.NewTLS(&tls.Config{
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil },
		InsecureSkipVerify:   true, NextProtos: []string{"h2"},
	})
}

// meshPair mints a certificate of the mesh CA in caDir for ns/sa.
func meshPair(t *testing.T, caDir, ns, sa string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	c := issueMeshCert(t, caDir, ns, sa)
	return *c.cert, c.bundle
}

// TestXDSPortAuthenticatesClients: egressd's xDS port gives configuration
// and secrets, and takes access-log entries, only from a gateway with a
// certificate of the mesh CA naming a gateway identity. A plaintext
// client, a client with another CA's certificate (even one claiming the
// gateway's identity), and a mesh workload that is not a gateway get no
// cluster and no secret, and their fabricated entries never become
// decisions; each refusal is counted and logged. The real Envoy's traffic
// flows throughout.
func TestXDSPortAuthenticatesClients(t *testing.T) {
	skipShort(t)
	web := upstreamHTTP(t, "web")
	dir := t.TempDir()
	caDir := filepath.Join(t.TempDir(), "ca")
	writeFile(t, dir, "web.yaml", staticEntry("web", "web.auth.test", 80, "HTTP", web))
	g := startGateway(t, dir, "--mesh-ca-dir", caDir)
	eventually(t, 30*time.Second, "gateway serving over the authenticated stream", g.wantStatus("web.auth.test", 200))

	other := newTestCA(t, "someone else's CA")
	otherPair := other.issueSPIFFE("spiffe://cluster.local/ns/egressd-system/sa/egress-gateway")
	workload, _ := meshPair(t, caDir, "default", "web")
	gateway, bundle := meshPair(t, caDir, "egressd-system", "egress-gateway")

	refused := []xdsClient{
		{"plaintext", insecure.NewCredentials()},
		{"other-ca", tlsCreds(otherPair)},
		{"no-certificate", credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})},
		{"workload", tlsCreds(workload)},
	}
	for _, c := range refused {
		clusters, secrets, err := c.fetch(t, g.XDSAddr)
		if clusters != 0 || secrets != 0 || err == nil {
			t.Errorf("%s: got %d clusters and %d secrets (%v), want none and an error", c.name, clusters, secrets, err)
		}
		if code := c.fabricate(g.XDSAddr, c.name+".fabricated.test"); code != codes.Unavailable {
			t.Errorf("%s: the access-log stream ended with %s, want Unavailable (refused)", c.name, code)
		}
	}

	// The gateway's identity from the mesh CA, verifying egressd's
	// certificate by its names: configuration and secrets.
	gw := xdsClient{"gateway", credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{gateway}, RootCAs: bundle, ServerName: "localhost", NextProtos: []string{"h2"}})}
	clusters, secrets, err := gw.fetch(t, g.XDSAddr)
	if clusters == 0 || secrets == 0 || err != nil {
		t.Errorf("gateway identity: %d clusters, %d secrets, %v", clusters, secrets, err)
	}
	if code := gw.fabricate(g.XDSAddr, "gateway.fabricated.test"); code == codes.Unavailable {
		t.Errorf("gateway identity: the access-log stream was refused")
	}
	g.waitDecision(t, "the gateway's entry is a decision", url.Values{"host": {"gateway.fabricated.test"}}, func(d decision.Decision) error {
		if d.Gateway != "spiffe://cluster.local/ns/egressd-system/sa/egress-gateway" || d.GatewayNode != "attacker-gateway" {
			return fmt.Errorf("gateway %q node %q", d.Gateway, d.GatewayNode)
		}
		return nil
	})
	for _, c := range refused {
		if ds := g.decisions(t, url.Values{"host": {c.name + ".fabricated.test"}}); len(ds) != 0 {
			t.Errorf("%s: its fabricated entry became %d decisions", c.name, len(ds))
		}
	}
	for reason, clients := range map[string]float64{"plaintext": 1, "untrusted_certificate": 1, "no_certificate": 1, "not_a_gateway": 1} {
		if n := g.metric(t, fmt.Sprintf(`egressd_xds_rejected_clients_total{reason=%q}`, reason)); n < clients {
			t.Errorf("egressd_xds_rejected_clients_total{reason=%q} = %v", reason, n)
		}
	}
	logs := g.Logs()
	if n := strings.Count(logs, `"msg":"xds client refused","reason":"not_a_gateway","client":"spiffe://cluster.local/ns/default/sa/web"`); n != 1 {
		t.Errorf("%d log lines for the refused workload, want 1 (once per identity)", n)
	}
	// Nothing on the admin port serves key material.
	for _, path := range []string{"/api/v1/allowlist", "/api/v1/gateway", "/api/v1/gateway?format=yaml", "/api/v1/health", "/api/v1/decisions", "/metrics", "/"} {
		resp, err := http.Get("http://" + g.EgressdAdmin + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "PRIVATE KEY") {
			t.Errorf("the admin port's %s serves a private key", path)
		}
	}
	// The real gateway's own decisions name it too.
	if code, _, err := g.httpGet("web.auth.test"); err != nil || code != 200 {
		t.Fatalf("traffic after the attempts: %d %v", code, err)
	}
	g.waitDecision(t, "a real decision names the gateway", url.Values{"host": {"web.auth.test"}, "verdict": {"allow"}}, func(d decision.Decision) error {
		if d.Gateway != "spiffe://cluster.local/ns/egressd-system/sa/egress-gateway" || d.GatewayNode != "egress-gateway" {
			return fmt.Errorf("gateway %q node %q", d.Gateway, d.GatewayNode)
		}
		return nil
	})
}

// TestXDSClientCertificateRenewal: the managed Envoy's xDS client
// certificate lives 20 s and is renewed every 10 s while requests flow
// through the gateway: none fails, the xDS stream reconnects at most once,
// and Envoy holds the renewed certificate.
func TestXDSClientCertificateRenewal(t *testing.T) {
	skipShort(t)
	web := upstreamHTTP(t, "web")
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", staticEntry("web", "web.renew.test", 80, "HTTP", web))
	g := startGateway(t, dir, "--xds-client-cert-ttl", "20s", "--no-envoy-access-log")
	eventually(t, 30*time.Second, "gateway serving", g.wantStatus("web.renew.test", 200))
	creds := filepath.Join(g.RunDir, "xds-credentials")
	first := credentialSerial(t, creds)
	if !slices.Contains(envoySerials(t, g), first) {
		t.Fatalf("Envoy does not hold the client certificate %s of %s", first, creds)
	}

	var ok, failed atomic.Int64
	deadline := time.Now().Add(25 * time.Second)
	for time.Now().Before(deadline) {
		if code, _, err := g.httpGet("web.renew.test"); err != nil || code != 200 {
			failed.Add(1)
			t.Logf("request failed: %d %v", code, err)
		} else {
			ok.Add(1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d requests, %d failed", ok.Load()+failed.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d requests failed during renewal", failed.Load())
	}
	renewals := strings.Count(g.Logs(), `"msg":"xds-client certificate renewed"`)
	if renewals < 2 {
		t.Errorf("%d renewals in 25 s of a 20 s certificate, want at least 2", renewals)
	}
	if n := strings.Count(g.Logs(), `"msg":"gateway connected"`); n > 2 {
		t.Errorf("the xDS stream connected %d times, want at most one reconnect", n)
	}
	eventually(t, 10*time.Second, "Envoy holds the renewed certificate", func() error {
		now := credentialSerial(t, creds)
		if now == first {
			return fmt.Errorf("the credential folder still holds the first certificate %s", first)
		}
		if !slices.Contains(envoySerials(t, g), now) {
			return fmt.Errorf("Envoy does not hold %s: %v", now, envoySerials(t, g))
		}
		return nil
	})
}

// envoySerials are the serials of every certificate the managed Envoy
// holds, from its admin /certs.
func envoySerials(t *testing.T, g *Gateway) []string {
	t.Helper()
	return adminSerials(t, g.AdminAddr)
}

// adminSerials are the serials of every certificate the Envoy with the
// admin interface admin holds.
func adminSerials(t *testing.T, admin string) []string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/certs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var certs struct {
		Certificates []struct {
			CertChain []struct {
				SerialNumber string `json:"serial_number"`
			} `json:"cert_chain"`
		} `json:"certificates"`
	}
	if err := json.Unmarshal(body, &certs); err != nil {
		t.Fatalf("/certs: %v: %s", err, body)
	}
	var out []string
	for _, c := range certs.Certificates {
		for _, cc := range c.CertChain {
			out = append(out, strings.TrimLeft(strings.ToLower(cc.SerialNumber), "0"))
		}
	}
	return out
}

// credentialSerial is the serial of the client certificate in a
// credential folder (its tls.crt).
func credentialSerial(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s/tls.crt holds no PEM", dir)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimLeft(fmt.Sprintf("%x", c.SerialNumber), "0")
}

// Serials are compared without leading zeros: Envoy's /certs prints every
// byte ("0663..."), Go's %x of the number drops a leading zero nibble.
