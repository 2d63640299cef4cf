package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/egressd/egressd/egress/xdsauth"
)

func controlPlaneConfig(t *testing.T, args ...string) *Config {
	t.Helper()
	dir := t.TempDir()
	cfg, err := NewConfig(append([]string{"--run-dir", dir}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestControlPlaneManagedCredentials: the managed Envoy's client
// certificate is written with its key, mode 0600 in a 0700 folder, for
// the first gateway identity; egressd's certificate names its identity
// and its listen address.
func TestControlPlaneManagedCredentials(t *testing.T) {
	cfg := controlPlaneConfig(t, "--gateway-identity", "egress/gw-a,egress/gw-b", "--xds-listen", "127.0.0.9:18000", "--xds-server-names", "egressd.example,10.1.2.3")
	cp, err := newControlPlane(cfg, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if cp.creds == nil {
		t.Fatal("no credentials: the xDS port would be plaintext")
	}
	if err := cp.writeManaged(cp.client.Current()); err != nil {
		t.Fatal(err)
	}
	dir := cp.credentialsDir()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("credential folder: %v %v", fi, err)
	}
	for _, f := range []string{xdsauth.FileTLSCertificate, xdsauth.FileValidationContext, xdsauth.FileKey} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi, err)
		}
	}
	if leaf := cp.client.Current().Leaf; leaf.URIs[0].String() != "spiffe://cluster.local/ns/egress/sa/gw-a" {
		t.Errorf("client identity %s", leaf.URIs[0])
	}
	srv := cp.server.Current().Leaf
	if srv.URIs[0].String() != cp.serverID || cp.serverID != "spiffe://cluster.local/ns/egressd-system/sa/egressd" {
		t.Errorf("server identity %s (%s)", srv.URIs[0], cp.serverID)
	}
	var ips []string
	for _, ip := range srv.IPAddresses {
		ips = append(ips, ip.String())
	}
	if got := strings.Join(ips, " "); got != "127.0.0.1 ::1 127.0.0.9 10.1.2.3" {
		t.Errorf("server IPs %s", got)
	}
	if got := strings.Join(srv.DNSNames, " "); got != "localhost egressd egressd.egressd-system egressd.egressd-system.svc egressd.egressd-system.svc.cluster.local egressd.example" {
		t.Errorf("server names %s", got)
	}
}

// TestControlPlaneInsecure: --xds-insecure serves without credentials and
// says so at once and every minute.
func TestControlPlaneInsecure(t *testing.T) {
	cfg := controlPlaneConfig(t, "--xds-insecure")
	core, logs := observer.New(zap.WarnLevel)
	cp, err := newControlPlane(cfg, zap.New(core), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if cp.creds != nil {
		t.Fatal("credentials with --xds-insecure")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = cp.Start(ctx)
	if n := logs.FilterMessageSnippet("--xds-insecure").Len(); n != 1 {
		t.Errorf("%d warnings in 200 ms, want 1 at start", n)
	}
}
