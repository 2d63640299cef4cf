package dashboard

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/serviceentry"
)

func get(t *testing.T, h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandlerRoutes(t *testing.T) {
	h := Handler(Config{})
	tests := map[string]struct {
		method, path string
		status       int
		ctype        string
		body         string
	}{
		"page at root":       {"GET", "/", 200, "text/html", `id="decisions"`},
		"page at dashboard":  {"GET", "/dashboard/", 200, "text/html", `src="/dashboard/assets/app.js"`},
		"dashboard no slash": {"GET", "/dashboard", 301, "", ""},
		"script":             {"GET", "/dashboard/assets/app.js", 200, "javascript", "EventSource"},
		"styles":             {"GET", "/dashboard/assets/app.css", 200, "text/css", "--deny"},
		"no listing":         {"GET", "/dashboard/assets/", 404, "", ""},
		"no index via files": {"GET", "/dashboard/assets/index.html", 404, "", ""},
		"missing asset":      {"GET", "/dashboard/assets/nope.js", 404, "", ""},
		"other path":         {"GET", "/nope", 404, "", ""},
		"read-only":          {"POST", "/", 405, "", ""},
		"health":             {"GET", "/api/v1/health", 200, "application/json", `"envoy_connected":false`},
		"allowlist":          {"GET", "/api/v1/allowlist", 200, "application/json", `"loaded":false`},
		"allowlist no POST":  {"POST", "/api/v1/allowlist", 405, "", ""},
		"gateway":            {"GET", "/api/v1/gateway", 200, "application/json", `"loaded":false`},
		"gateway yaml, none": {"GET", "/api/v1/gateway?format=yaml", 503, "", "no gateway configuration published"},
		"gateway bad format": {"GET", "/api/v1/gateway?format=xml", 400, "", `format "xml"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := get(t, h, tc.method, tc.path, nil)
			if w.Code != tc.status {
				t.Fatalf("%s %s: status %d, want %d\n%s", tc.method, tc.path, w.Code, tc.status, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); !strings.Contains(ct, tc.ctype) {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			if !strings.Contains(w.Body.String(), tc.body) {
				t.Errorf("body lacks %q:\n%.400s", tc.body, w.Body)
			}
			if tc.status == 200 && strings.HasPrefix(tc.ctype, "text/html") {
				if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
					t.Errorf("Content-Security-Policy %q", csp)
				}
			}
		})
	}
}

// TestAssetsFetchNothingOutside: the page works air-gapped: no URL to
// another origin, no inline script or style the CSP would block.
func TestAssetsFetchNothingOutside(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(assets, "assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(path)
		if err != nil {
			return err
		}
		s := strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", "")
		for _, m := range external.FindAllString(s, -1) {
			t.Errorf("%s refers to %s", path, m)
		}
		if strings.HasSuffix(path, ".html") {
			for _, bad := range []string{"<script>", "style=", "onclick=", "onload="} {
				if strings.Contains(s, bad) {
					t.Errorf("%s has inline %q, which the Content-Security-Policy blocks", path, bad)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

const allowlistYAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payments, namespace: shop}
spec:
  hosts: [api.payments.example]
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 443}
  - {number: 443, name: https, protocol: HTTPS}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payments, namespace: shop}
spec:
  host: api.payments.example
  trafficPolicy:
    tls:
      mode: MUTUAL
      clientCertificate: /etc/egress/client.pem
      privateKey: /etc/egress/client.key
      caCertificates: /etc/egress/ca.pem
      sni: pay.example
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: shop}
spec:
  hosts: ["*.cdn.example"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: everything, namespace: shop}
spec:
  hosts: ["*"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
`

func TestAllowlistJSON(t *testing.T) {
	a := serviceentry.CompileYAML("shop.yaml", []byte(allowlistYAML))
	h := Handler(Config{Allowlist: func() *serviceentry.Allowlist { return a }})
	w := get(t, h, "GET", "/api/v1/allowlist", nil)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var v AllowlistView
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Loaded || v.Version != a.Version() || v.Version == "" {
		t.Errorf("loaded %v version %q, want true and %q", v.Loaded, v.Version, a.Version())
	}
	if len(v.Hosts) != 2 || v.Hosts[0].Name != "*.cdn.example" || !v.Hosts[0].Wildcard || v.Hosts[1].Name != "api.payments.example" {
		t.Fatalf("hosts %+v", v.Hosts)
	}
	pay := v.Hosts[1].Ports
	if len(pay) != 2 {
		t.Fatalf("api.payments.example ports %+v", pay)
	}
	p80 := pay[0]
	if p80.Number != 80 || p80.Protocol != "HTTP" || p80.TargetPort != 443 || p80.ServiceEntry != "shop/payments" ||
		p80.Resolution != "DNS" || p80.File != "shop.yaml" || p80.Line != 1 {
		t.Errorf("port 80: %+v", p80)
	}
	if tls := p80.TLS; tls == nil || tls.Mode != "MUTUAL" || tls.Rule != "shop/payments" || tls.SNI != "pay.example" ||
		tls.PrivateKey != "/etc/egress/client.key" || tls.ClientCertificate != "/etc/egress/client.pem" {
		t.Errorf("port 80 TLS: %+v", p80.TLS)
	}
	if pay[1].Number != 443 || pay[1].TLS != nil {
		t.Errorf("port 443 (client TLS, nothing to originate): %+v", pay[1])
	}
	if len(v.Entries) != 2 || v.Entries[0].Ref.Name != "payments" || strings.Join(v.Entries[0].Ports, ",") != "80/HTTP http,443/HTTPS https" {
		t.Errorf("entries %+v", v.Entries)
	}
	if len(v.Rules) != 1 || v.Rules[0].Mode != "MUTUAL" || v.Rules[0].Host != "api.payments.example" {
		t.Errorf("rules %+v", v.Rules)
	}
	if v.Errors != 1 || len(v.Problems) == 0 {
		t.Fatalf("errors %d, problems %+v", v.Errors, v.Problems)
	}
	p := v.Problems[0]
	if p.Ref.Name != "everything" || p.Severity != "error" || p.Field != "spec.hosts[0]" || !strings.Contains(p.Error, "shop.yaml:") {
		t.Errorf("problem %+v", p)
	}
}

// TestAllowlistJSONHasNoKeyMaterial: with real PEM in the rule's place,
// only paths and names are served.
func TestAllowlistJSONHasNoKeyMaterial(t *testing.T) {
	a := serviceentry.CompileYAML("shop.yaml", []byte(allowlistYAML))
	body := get(t, Handler(Config{Allowlist: func() *serviceentry.Allowlist { return a }}), "GET", "/api/v1/allowlist", nil).Body.String()
	for _, bad := range []string{"BEGIN", "PRIVATE KEY", "tls.key\":", "\"key\":"} {
		if strings.Contains(body, bad) {
			t.Errorf("allowlist JSON contains %q", bad)
		}
	}
}

func TestAllowlistJSONBeforeFirstLoad(t *testing.T) {
	h := Handler(Config{Allowlist: func() *serviceentry.Allowlist { return nil }})
	body := get(t, h, "GET", "/api/v1/allowlist", nil).Body.String()
	want := `{"loaded":false,"version":"","hosts":[],"entries":[],"rules":[],"problems":[],"errors":0}`
	if strings.TrimSpace(body) != want {
		t.Errorf("got %s\nwant %s", body, want)
	}
}

func TestHealthJSON(t *testing.T) {
	snap := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := map[string]struct {
		in   Health
		want map[string]any
	}{
		"in sync": {
			Health{EnvoyConnected: true, AckedVersion: "v1", PublishedVersion: "v1", SourceSynced: true, LastSnapshot: snap, AllowlistVersion: "abc", Outbound: "REGISTRY_ONLY"},
			map[string]any{"envoy_connected": true, "in_sync": true, "last_snapshot": "2026-01-02T03:04:05Z", "outbound": "REGISTRY_ONLY", "allowlist_version": "abc"},
		},
		"behind": {
			Health{EnvoyConnected: true, AckedVersion: "v1", PublishedVersion: "v2", Rejected: "bad cluster"},
			map[string]any{"in_sync": false, "rejected": "bad cluster", "last_snapshot": nil},
		},
		"nothing yet": {
			Health{},
			map[string]any{"envoy_connected": false, "in_sync": false, "source_synced": false, "last_snapshot": nil, "parts_agree": false},
		},
		"parts agree": {
			Health{Parts: []Part{{Name: "gateway", Allowlist: "abc"}, {Name: "dns proxy", Allowlist: "abc"}}},
			map[string]any{"parts_agree": true},
		},
		"parts disagree": {
			Health{Parts: []Part{{Name: "gateway", Allowlist: "abc"}, {Name: "dns proxy", Allowlist: "def"}}},
			map[string]any{"parts_agree": false},
		},
		"a part holds nothing": {
			Health{Parts: []Part{{Name: "gateway", Allowlist: ""}, {Name: "dns proxy", Allowlist: ""}}},
			map[string]any{"parts_agree": false},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := Handler(Config{Health: func() Health { return tc.in }})
			var got map[string]any
			if err := json.Unmarshal(get(t, h, "GET", "/api/v1/health", nil).Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.want {
				if got[k] != want {
					t.Errorf("%s: %v, want %v (all: %v)", k, got[k], want, got)
				}
			}
			if _, ok := got["now"]; !ok {
				t.Error("no now")
			}
		})
	}
}

func TestRequireToken(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("inside " + r.URL.RawQuery)) })
	h := RequireToken("s3cret", ok)
	tests := map[string]struct {
		target   string
		header   map[string]string
		status   int
		cookie   bool   // sets the cookie
		location string // redirect target
	}{
		"nothing":             {"/", nil, 401, false, ""},
		"bearer":              {"/api/v1/health", map[string]string{"Authorization": "Bearer s3cret"}, 200, false, ""},
		"bearer any case":     {"/", map[string]string{"Authorization": "bearer s3cret"}, 200, false, ""},
		"wrong bearer":        {"/", map[string]string{"Authorization": "Bearer s3cre"}, 401, false, ""},
		"basic is not bearer": {"/", map[string]string{"Authorization": "Basic s3cret"}, 401, false, ""},
		"query, browser":      {"/?view=chains&token=s3cret&host=a.example", map[string]string{"Accept": "text/html,*/*"}, 303, true, "/?host=a.example&view=chains"},
		"query, API client":   {"/api/v1/health?token=s3cret", nil, 200, true, ""},
		"wrong query":         {"/?token=nope", map[string]string{"Accept": "text/html"}, 401, false, ""},
		"cookie":              {"/api/v1/aggregates", map[string]string{"Cookie": TokenCookie + "=s3cret"}, 200, false, ""},
		"wrong cookie":        {"/", map[string]string{"Cookie": TokenCookie + "=s3cre"}, 401, false, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := get(t, h, "GET", tc.target, tc.header)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			sc := w.Header().Get("Set-Cookie")
			if tc.cookie {
				for _, want := range []string{TokenCookie + "=s3cret", "HttpOnly", "SameSite=Strict", "Path=/"} {
					if !strings.Contains(sc, want) {
						t.Errorf("Set-Cookie %q lacks %q", sc, want)
					}
				}
			} else if sc != "" {
				t.Errorf("unexpected Set-Cookie %q", sc)
			}
			if loc := w.Header().Get("Location"); loc != tc.location {
				t.Errorf("Location %q, want %q", loc, tc.location)
			}
			if w.Code == 401 {
				if w.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if strings.Contains(w.Body.String(), "s3cret") {
					t.Error("the 401 body shows the token")
				}
			}
		})
	}
}

func TestRequireTokenEmptyPassesThrough(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	if w := get(t, RequireToken("", ok), "GET", "/", nil); w.Code != 204 {
		t.Errorf("status %d, want 204", w.Code)
	}
}
