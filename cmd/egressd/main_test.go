package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/egressd/egressd/serviceentry/source"
)

// testSE is a ServiceEntry ns/<name> with spec (YAML lines as they sit
// under "spec:", indented by two spaces).
func testSE(name, spec string) string {
	return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: %s\n  namespace: ns\nspec:\n%s", name, spec)
}

const (
	tlsSpec  = "  hosts: [api.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}]\n"
	httpSpec = "  hosts: [web.example.com, www.example.com]\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: HTTP}]\n"
)

func TestExecute(t *testing.T) {
	tests := map[string]struct {
		files map[string]string // written to a temp folder, {dir} in the args
		args  []string
		// want* may hold {dir} (the temp folder) and {version} (the
		// folder's allowlist version).
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		"validate valid files": {
			files:      map[string]string{"a.yaml": testSE("a", tlsSpec), "sub/b.yaml": testSE("b", httpSpec)},
			args:       []string{"validate", "--config", "{dir}"},
			wantStdout: "2 ServiceEntries valid, 3 hosts allowed, 0 errors, version {version}\n",
		},
		"validate lists policies not for the gateway": {
			files: map[string]string{"a.yaml": testSE("a", tlsSpec), "p.yaml": "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n" +
				"metadata: {name: inbound, namespace: shop}\nspec:\n  selector: {matchLabels: {app: cart}}\n  action: DENY\n  rules: [{}]\n"},
			args: []string{"validate", "--config", "{dir}", "--gateway-namespace", "egress"},
			wantStdout: "not for the gateway: AuthorizationPolicy shop/inbound ({dir}/p.yaml:1): namespace shop is neither the gateway's (egress) nor the mesh root (istio-system): it is for workloads of shop\n" +
				"1 ServiceEntries valid, 1 hosts allowed, 0 errors, version {version}\n",
		},
		"validate with a warning": {
			files: map[string]string{"w.yaml": testSE("w", "  hosts: [db.example.com]\n  resolution: DNS\n  ports: [{number: 5432, name: pg}]\n")},
			args:  []string{"validate", "--config={dir}"},
			wantStdout: "warning: {dir}/w.yaml:1: ServiceEntry ns/w: spec.ports[0].protocol: not set; egressd treats the port as TCP (Istio would detect the protocol, the gateway cannot): set protocol: TCP, or HTTP, HTTPS or TLS if the port speaks that\n" +
				"1 ServiceEntries valid, 1 hosts allowed, 0 errors, version {version}\n",
		},
		"validate an invalid file": {
			files: map[string]string{
				"a.yaml":   testSE("a", tlsSpec),
				"bad.yaml": testSE("bad", "  hosts: ['*']\n  ports: [{number: 443, name: tls, protocol: TLS}]\n"),
			},
			args:     []string{"validate", "--config", "{dir}"},
			wantCode: 1,
			wantStdout: `error: {dir}/bad.yaml:1: ServiceEntry ns/bad: spec.hosts[0]: "*" matches every host; list the hosts you need, or use a wildcard such as "*.example.com"` + "\n" +
				"1 ServiceEntries valid, 1 hosts allowed, 1 errors, version {version}\n",
		},
		"validate a conflict": {
			files:    map[string]string{"a.yaml": testSE("a", tlsSpec), "b.yaml": testSE("b", tlsSpec)},
			args:     []string{"validate", "--config", "{dir}"},
			wantCode: 1,
			wantStdout: `error: {dir}/b.yaml:1: ServiceEntry ns/b: spec.hosts[0]: host "api.example.com" port 443 is already allowed by ServiceEntry ns/a; this port is ignored for this host` + "\n" +
				"2 ServiceEntries valid, 1 hosts allowed, 1 errors, version {version}\n",
		},
		"validate a missing folder": {
			args:       []string{"validate", "--config", "{dir}/missing"},
			wantCode:   1,
			wantStderr: "egressd validate: config dir: stat {dir}/missing: no such file or directory\n",
		},
		"validate with a folder as argument": {
			files:      map[string]string{"a.yaml": testSE("a", tlsSpec)},
			args:       []string{"validate", "{dir}"},
			wantCode:   2,
			wantStderr: "egressd validate: unexpected arguments: {dir}; name the folder with --config\n",
		},
		"validate with an unknown flag": {
			args:     []string{"validate", "--dir", "{dir}"},
			wantCode: 2,
			wantStderr: "flag provided but not defined: -dir\nUsage of egressd validate:\n" +
				"  -config string\n    \tfolder of ServiceEntry YAML files (default \"examples\")\n" + validateScopeHelp,
		},
		"validate help": {
			args:       []string{"validate", "-h"},
			wantStderr: "Usage of egressd validate:\n  -config string\n    \tfolder of ServiceEntry YAML files (default \"examples\")\n" + validateScopeHelp,
		},
		"version":   {args: []string{"version"}, wantStdout: "egressd dev\n"},
		"--version": {args: []string{"--version"}, wantStdout: "egressd dev\n"},
		"help":      {args: []string{"help"}, wantStdout: usage},
		"no command": {
			args:       nil,
			wantCode:   2,
			wantStderr: usage,
		},
		"unknown command": {
			args:       []string{"serve"},
			wantCode:   2,
			wantStderr: "egressd: unknown command \"serve\"\n\n" + usage,
		},
		// run fails on its flags before it starts anything.
		"run with an invalid flag": {
			args:       []string{"run", "--outbound=DENY"},
			wantCode:   2,
			wantStderr: "egressd run: --outbound: unknown outbound mode \"DENY\": use REGISTRY_ONLY, ALLOW_ANY or AUDIT\n",
		},
		"run with an invalid log level": {
			args:       []string{"run", "--log-level=loud"},
			wantCode:   2,
			wantStderr: "egressd run: --log-level: unrecognized level: \"loud\"\n",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for rel, data := range tt.files {
				path := filepath.Join(dir, rel)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			version := ""
			if a, err := source.LoadDir(dir); err == nil {
				version = a.Version()
			}
			expand := strings.NewReplacer("{dir}", dir, "{version}", version).Replace
			var args []string
			for _, a := range tt.args {
				args = append(args, expand(a))
			}

			var stdout, stderr strings.Builder
			code := execute(context.Background(), args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if d := cmp.Diff(expand(tt.wantStdout), stdout.String()); d != "" {
				t.Errorf("stdout (-want +got):\n%s", d)
			}
			if d := cmp.Diff(expand(tt.wantStderr), stderr.String()); d != "" {
				t.Errorf("stderr (-want +got):\n%s", d)
			}
		})
	}
}

// TestExecuteRunHelp: `egressd run -h` prints the flags and exits 0
// without starting anything.
func TestExecuteRunHelp(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := execute(context.Background(), []string{"run", "-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	for _, flag := range []string{"-config", "-outbound", "-envoy", "-gateway-address", "-port-offset", "-gateway-dns", "-connect-timeout", "-log-format"} {
		if !strings.Contains(stderr.String(), "  "+flag+" ") {
			t.Errorf("usage does not list %s:\n%s", flag, stderr.String())
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("unexpected stdout:\n%s", stdout.String())
	}
}

// TestValidateExamples: the examples `make run` serves are valid.
func TestValidateExamples(t *testing.T) {
	var stdout, stderr strings.Builder
	code := execute(context.Background(), []string{"validate", "--config", "../../examples"}, &stdout, &stderr)
	if code != 0 || stderr.Len() != 0 {
		t.Errorf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
}

// validateScopeHelp is the help of the gateway scope flags validate shares
// with run.
const validateScopeHelp = "  -gateway-labels string\n    \tthe gateway's labels (k=v,...), matched against policies' spec.selector.matchLabels; the default is what Istio's egress gateway carries, so the policies of Istio's egress tasks apply (default \"app=istio-egressgateway,istio=egressgateway\")\n" +
	"  -gateway-namespace string\n    \tthe gateway's namespace: AuthorizationPolicies and PeerAuthentications there (and in --mesh-root-namespace) apply to it when their selector matches --gateway-labels; those of other namespaces are for other workloads; the default is $POD_NAMESPACE, else istio-system (default \"istio-system\")\n" +
	"  -mesh-root-namespace string\n    \tthe mesh root namespace (Istio's meshConfig.rootNamespace): a policy there without a selector applies mesh-wide (default \"istio-system\")\n"
