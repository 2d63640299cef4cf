package serviceentry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fuzzSeeds are the inputs the decoder fuzzers start from: every example
// and invalid test file, JSON forms, and the shapes that attack a YAML
// decoder (alias and anchor bombs, merge keys, deep nesting, huge scalars,
// odd tags).
func fuzzSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, glob := range []string{"../examples/*.yaml", "testdata/invalid/*.yaml", "testdata/in/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	bomb := "a: &a [x, x, x, x, x, x, x, x, x]\n"
	for i, prev := 0, "a"; i < 8; i++ {
		name := string(rune('b' + i))
		bomb += name + ": &" + name + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = name
	}
	for _, s := range []string{
		"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: cnn, namespace: default}\nspec:\n  hosts: [edition.cnn.com]\n  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]\n  resolution: DNS\n---\n" +
			"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: cnn, namespace: default}\nspec:\n  hosts: [edition.cnn.com, '*.wikipedia.org']\n  http: [{match: [{port: 80}], route: [{destination: {host: edition.cnn.com, port: {number: 443}}}], timeout: 3s, retries: {attempts: 2}}]\n  tls: [{match: [{port: 443, sniHosts: ['*.wikipedia.org']}], route: [{destination: {host: edition.cnn.com, port: {number: 443}}}]}]\n---\n" +
			"apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: web}\nspec:\n  egress: [{hosts: ['./*', 'istio-system/*', '*/*.example.com']}]\n",
		`{"apiVersion":"networking.istio.io/v1","kind":"ServiceEntry","metadata":{"name":"j","namespace":"n"},"spec":{"hosts":["a.example.com"],"ports":[{"number":443,"name":"https","protocol":"HTTPS"}],"resolution":"DNS"}}`,
		`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"networking.istio.io/v1","kind":"ServiceEntry","metadata":{"name":"j"},"spec":{"hosts":["*.example.com"],"ports":[{"number":80,"name":"http","protocol":"HTTP"}]}}]}`,
		"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: &m {name: a, namespace: b}\nspec:\n  hosts: [a.test]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: *m\nspec: {}\n",
		"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  <<: {hosts: [a.test]}\n",
		bomb,
		strings.Repeat("[", 5000) + strings.Repeat("]", 5000),
		"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: n}\nspec:\n  rules:\n  - when: [{key: " + strings.Repeat("k", 100000) + ", values: [v]}]\n",
		"!!binary gIGC\n", "--- !<tag:yaml.org,2002:set>\n? a\n", "%YAML 1.1\n---\na: b\n", "\xef\xbb\xbfa: b\n", "\x00\x01\x02",
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d, namespace: n}\nspec:\n  host: a.test\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 443}\n      tls: {mode: MUTUAL, credentialName: c}\n",
	} {
		out = append(out, []byte(s))
	}
	return out
}

// FuzzParseConfig: no input, YAML or JSON, makes the decoder, validation or
// compilation panic or hang, and what comes out keeps the allowlist's
// invariants: every problem says something, and every compiled host has
// ports.
func FuzzParseConfig(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		cfg, problems := ParseConfig("fuzz.yaml", data)
		for _, p := range problems {
			if p.Message == "" || p.Ref.File != "fuzz.yaml" || p.Code == "" {
				t.Fatalf("problem without a message, file or code: %+v", p)
			}
		}
		a := CompileConfig(cfg, problems)
		for _, p := range a.Problems() {
			if p.Code == "" {
				t.Fatalf("problem without a code: %+v", p)
			}
		}
		for _, h := range a.Hosts() {
			if h.Name == "" || len(h.Ports) == 0 {
				t.Fatalf("host %q without ports", h.Name)
			}
			if a.Match(h.Name) == nil && !h.Wildcard {
				t.Fatalf("host %q does not match itself", h.Name)
			}
		}
		if d := time.Since(start); d > 5*time.Second && len(data) < 1<<20 {
			t.Fatalf("%d bytes took %s", len(data), d)
		}
	})
}

// TestDecodeLimits: the size and depth limits say what to do.
func TestDecodeLimits(t *testing.T) {
	deep := "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: deep, namespace: n}\nspec:\n  hosts: [a.test]\n  x: " +
		strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n---\n" +
		"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: fine, namespace: n}\nspec:\n  hosts: [b.test]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n"
	cfg, problems := ParseConfig("deep.yaml", []byte(deep))
	if len(cfg.Entries) != 1 || cfg.Entries[0].Ref.Name != "fine" {
		t.Errorf("the document beside the deep one must decode: %+v", cfg.Entries)
	}
	if len(problems) != 1 || problems[0].Ref.Line != 1 || !strings.Contains(problems[0].Message, "nested deeper than 64 levels") {
		t.Errorf("problems %v", problems)
	}

	big := make([]byte, MaxFileBytes+1)
	_, problems = ParseConfig("big.yaml", big)
	if len(problems) != 1 || !strings.Contains(problems[0].Message, "split it into several files") {
		t.Errorf("a file over the limit: %v", problems)
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, big, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), "more than the 67108864 egressd reads (64 MiB)") {
		t.Errorf("ReadFile of a file over the limit: %v", err)
	}
}

// TestAliasBombIsRefusedQuickly: anchors and aliases are refused where
// they appear; a bomb costs its size, not its expansion.
func TestAliasBombIsRefusedQuickly(t *testing.T) {
	bomb := "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: bomb, namespace: n}\nspec:\n  hosts: &h [a.test, a.test, a.test, a.test, a.test, a.test, a.test, a.test]\n"
	prev := "h"
	for i := 0; i < 30; i++ {
		name := "x" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		bomb += "  " + name + ": &" + name + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = name
	}
	start := time.Now()
	_, problems := ParseConfig("bomb.yaml", []byte(bomb))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("an alias bomb took %s", d)
	}
	if len(problems) == 0 {
		t.Error("an alias bomb decoded without a problem")
	}
}
