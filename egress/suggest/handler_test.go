package suggest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry"
)

func TestHandler(t *testing.T) {
	fixed := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now = func() time.Time { return fixed }
	t.Cleanup(func() { now = time.Now })

	allow := mustAllowlist(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: fixed}
spec:
  hosts: [fixed.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
`)
	recorded := []*decision.Decision{
		deny("tls", "a.example.com", 443),
		deny("tls", "b.example.com", 443),
		deny("tls", "fixed.example.com", 443),
	}
	var gotSince time.Time
	h := Handler(func(since time.Time) []*decision.Decision {
		gotSince = since
		return recorded
	}, func() *serviceentry.Allowlist { return allow })

	tests := map[string]struct {
		method, query string
		status        int
		contentType   string
		since         time.Time
		body          []string // substrings of the body
	}{
		"defaults": {query: "", status: 200, contentType: "application/yaml", since: fixed.Add(-24 * time.Hour),
			body: []string{"name: egressd-a-example-com\n", "name: egressd-b-example-com\n", "resolution: DNS"}},
		"duration": {query: "since=1h", status: 200, contentType: "application/yaml", since: fixed.Add(-time.Hour)},
		"rfc3339": {query: "since=2026-02-28T00:00:00Z", status: 200, contentType: "application/yaml",
			since: time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)},
		"namespace and wildcard": {query: "namespace=egress&wildcard_min=2&format=yaml", status: 200, contentType: "application/yaml",
			since: fixed.Add(-24 * time.Hour), body: []string{"namespace: egress\n", "'*.example.com'", "covers: a.example.com, b.example.com"}},
		"json": {query: "format=json&wildcard_min=-1", status: 200, contentType: "application/json", since: fixed.Add(-24 * time.Hour),
			body: []string{`"suggestions": [`, `"host": "a.example.com"`}},
		"bad since":        {query: "since=yesterday", status: 400, body: []string{"since: \"yesterday\""}},
		"negative since":   {query: "since=-1h", status: 400, body: []string{"since: \"-1h\" is negative"}},
		"bad namespace":    {query: "namespace=Egress", status: 400, body: []string{"namespace: \"Egress\""}},
		"bad wildcard_min": {query: "wildcard_min=three", status: 400, body: []string{"wildcard_min: \"three\""}},
		"bad format":       {query: "format=xml", status: 400, body: []string{"format: \"xml\""}},
		"unknown param":    {query: "wildcard-min=2", status: 400, body: []string{`unknown parameter "wildcard-min"`}},
		"post":             {method: "POST", status: 405, body: []string{"use GET"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			gotSince = time.Time{}
			method := tc.method
			if method == "" {
				method = "GET"
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, "/api/v1/suggestions?"+tc.query, nil))
			body := rec.Body.String()
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body: %s", rec.Code, tc.status, body)
			}
			if tc.contentType != "" && rec.Header().Get("Content-Type") != tc.contentType {
				t.Errorf("Content-Type %q, want %q", rec.Header().Get("Content-Type"), tc.contentType)
			}
			if !tc.since.IsZero() && !gotSince.Equal(tc.since) {
				t.Errorf("decisions asked since %v, want %v", gotSince, tc.since)
			}
			for _, want := range tc.body {
				if !strings.Contains(body, want) {
					t.Errorf("body lacks %q:\n%s", want, body)
				}
			}
			if strings.Contains(body, "fixed.example.com") {
				t.Errorf("an allowed host is suggested:\n%s", body)
			}
		})
	}
}

// TestHandlerEmpty: no suggestions are an empty YAML body and an empty
// JSON list (never null), and a nil allowlist func is fine.
func TestHandlerEmpty(t *testing.T) {
	srv := httptest.NewServer(Handler(func(time.Time) []*decision.Decision { return nil }, nil))
	defer srv.Close()
	for format, want := range map[string]string{"yaml": "", "json": "{\n  \"suggestions\": []\n}\n"} {
		resp, err := http.Get(srv.URL + "/?format=" + format)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want {
			t.Errorf("%s: status %d, body %q; want 200, %q", format, resp.StatusCode, b, want)
		}
		if format == "json" {
			var v struct{ Suggestions []Suggestion }
			if err := json.Unmarshal(b, &v); err != nil || v.Suggestions == nil {
				t.Errorf("json: %v, %#v", err, v)
			}
		}
	}
}
