package main

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const suggestionYAML = `# 2 denials, last seen 2026-03-01T12:00:00Z
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: egressd-api-example-com
spec:
  hosts:
    - api.example.com
`

func TestSuggest(t *testing.T) {
	tests := map[string]struct {
		args      []string
		body      string
		wantQuery map[string][]string
		stdout    string
		stderr    string
	}{
		"yaml": {
			args: nil, body: suggestionYAML,
			wantQuery: map[string][]string{"since": {"24h"}, "format": {"yaml"}},
			stdout:    suggestionYAML,
		},
		"flags": {
			args:      []string{"--since", "2h", "--namespace", "egress", "--wildcard-min", "-1", "-o", "json"},
			body:      `{"suggestions":[{"host":"api.example.com"}]}`,
			wantQuery: map[string][]string{"since": {"2h"}, "format": {"json"}, "namespace": {"egress"}, "wildcard_min": {"-1"}},
			stdout:    `{"suggestions":[{"host":"api.example.com"}]}`,
		},
		"wildcard-min at its default is still sent when given": {
			args: []string{"--wildcard-min", "3"}, body: suggestionYAML,
			wantQuery: map[string][]string{"since": {"24h"}, "format": {"yaml"}, "wildcard_min": {"3"}},
			stdout:    suggestionYAML,
		},
		"none, yaml": {
			args: nil, body: "",
			wantQuery: map[string][]string{"since": {"24h"}, "format": {"yaml"}},
			stderr:    "egressctl: no suggestions: no denials a ServiceEntry would fix since 24h\n",
		},
		"none, json": {
			args: []string{"--output", "json"}, body: "{\"suggestions\": []}\n",
			wantQuery: map[string][]string{"since": {"24h"}, "format": {"json"}},
			stdout:    "{\"suggestions\": []}\n",
			stderr:    "egressctl: no suggestions: no denials a ServiceEntry would fix since 24h\n",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v1/suggestions" {
					http.NotFound(w, r)
					return
				}
				w.Write([]byte(tc.body))
			})
			got := runCLI(context.Background(), append([]string{"--admin", srv.URL, "suggest"}, tc.args...)...)
			if got.code != 0 || got.stdout != tc.stdout || got.stderr != tc.stderr {
				t.Errorf("exit %d, stdout %q, stderr %q; want 0, %q, %q", got.code, got.stdout, got.stderr, tc.stdout, tc.stderr)
			}
			if d := cmp.Diff(tc.wantQuery, map[string][]string(query(srv.request(t, 0)))); d != "" {
				t.Errorf("query (-want +got):\n%s", d)
			}
		})
	}
}

func TestSuggestBadJSON(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("oops")) })
	got := runCLI(context.Background(), "--admin", srv.URL, "suggest", "-o", "json")
	if got.code != 1 || got.stdout != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", got.code, got.stdout, got.stderr)
	}
}
