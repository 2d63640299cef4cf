package dashboard

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/egressd/egressd/egress/gateway"
	"github.com/egressd/egressd/serviceentry"
)

//go:embed assets
var assets embed.FS

// Health is what the health panel shows: the state of the Envoy gateway's
// xDS connection and of the configuration source.
type Health struct {
	// EnvoyConnected reports whether a gateway holds an ADS stream now.
	EnvoyConnected bool
	// AckedVersion is the configuration version the gateway last
	// acknowledged; PublishedVersion the last one egressd published.
	AckedVersion, PublishedVersion string
	// Rejected is the error of the last configuration the gateway
	// rejected (NACKed), empty when none was.
	Rejected string
	// SourceSynced reports whether the configuration source has loaded
	// (a first allowlist is in force).
	SourceSynced bool
	// LastSnapshot is when the allowlist in force was compiled; zero when
	// none was yet.
	LastSnapshot time.Time
	// AllowlistVersion is the version of the allowlist in force.
	AllowlistVersion string
	// Outbound is the outbound mode: REGISTRY_ONLY, ALLOW_ANY or AUDIT.
	Outbound string
	// Parts say which allowlist each part of egressd holds (the gateway,
	// its resolver, the DNS proxy, the intake): they move together.
	Parts []Part
}

// Part is one part of egressd and the version of the allowlist it holds.
type Part struct {
	Name      string `json:"name"`
	Allowlist string `json:"allowlist"`
}

// Config is what the dashboard reads. The callbacks are called per
// request and must be safe for concurrent use.
type Config struct {
	// Allowlist returns the allowlist in force; it may be nil, or return
	// nil before the first one is loaded.
	Allowlist func() *serviceentry.Allowlist
	// Gateway returns the gateway model last published; it may be nil, or
	// return nil before the first one is.
	Gateway func() *gateway.Gateway
	// Health returns the current health; nil serves an empty Health.
	Health func() Health
}

// Handler serves the dashboard, all GET:
//
//	/, /dashboard/          the page
//	/dashboard/assets/...   its embedded CSS and JavaScript
//	/api/v1/allowlist       the allowlist in force as JSON (see AllowlistView)
//	/api/v1/gateway         the gateway model published as JSON (see GatewayView),
//	                        ?format=yaml the model alone as YAML
//	/api/v1/health          cfg.Health as JSON (see HealthView)
//
// The page itself reads /api/v1/decisions/stream, /api/v1/aggregates,
// /api/v1/chains and /api/v1/suggestions, which the caller mounts on the
// same server. Any other path is 404.
func Handler(cfg Config) http.Handler {
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	index, err := fs.ReadFile(static, "index.html")
	if err != nil {
		panic(err)
	}
	page := func(w http.ResponseWriter, _ *http.Request) {
		securityHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(index)
	}
	files := http.StripPrefix("/dashboard/assets/", http.FileServerFS(static))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", page)
	mux.HandleFunc("GET /dashboard/{$}", page)
	mux.Handle("GET /dashboard", http.RedirectHandler("/dashboard/", http.StatusMovedPermanently))
	mux.HandleFunc("GET /dashboard/assets/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/dashboard/assets/" || r.URL.Path == "/dashboard/assets/index.html" {
			http.NotFound(w, r) // no directory listing, the page has its own paths
			return
		}
		securityHeaders(w)
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /api/v1/allowlist", func(w http.ResponseWriter, _ *http.Request) {
		var a *serviceentry.Allowlist
		if cfg.Allowlist != nil {
			a = cfg.Allowlist()
		}
		writeJSON(w, NewAllowlistView(a))
	})
	mux.HandleFunc("GET /api/v1/gateway", func(w http.ResponseWriter, r *http.Request) {
		var g *gateway.Gateway
		if cfg.Gateway != nil {
			g = cfg.Gateway()
		}
		switch format := r.URL.Query().Get("format"); format {
		case "", "json":
			writeJSON(w, NewGatewayView(g))
		case "yaml":
			if g == nil {
				http.Error(w, "no gateway configuration published yet", http.StatusServiceUnavailable)
				return
			}
			out, err := yaml.Marshal(g)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/yaml")
			_, _ = w.Write(out)
		default:
			http.Error(w, fmt.Sprintf("format %q: use json or yaml", format), http.StatusBadRequest)
		}
	})
	mux.HandleFunc("GET /api/v1/health", func(w http.ResponseWriter, _ *http.Request) {
		var h Health
		if cfg.Health != nil {
			h = cfg.Health()
		}
		writeJSON(w, NewHealthView(h, time.Now()))
	})
	return mux
}

// securityHeaders keeps the page to its own origin: no inline script, no
// external fetch, no framing, no referrer (a ?token= must not leak).
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// HealthView is the JSON body of /api/v1/health.
type HealthView struct {
	EnvoyConnected   bool   `json:"envoy_connected"`
	AckedVersion     string `json:"acked_version"`
	PublishedVersion string `json:"published_version"`
	// InSync reports whether the gateway acknowledged the published version.
	InSync           bool       `json:"in_sync"`
	Rejected         string     `json:"rejected,omitempty"`
	SourceSynced     bool       `json:"source_synced"`
	LastSnapshot     *time.Time `json:"last_snapshot,omitempty"`
	AllowlistVersion string     `json:"allowlist_version"`
	Outbound         string     `json:"outbound"`
	Parts            []Part     `json:"parts"`
	// PartsAgree reports whether every part holds the same allowlist.
	PartsAgree bool `json:"parts_agree"`
	// Now is the server's clock, so the page can show ages without
	// trusting the browser's.
	Now time.Time `json:"now"`
}

// NewHealthView turns h into its JSON form.
func NewHealthView(h Health, now time.Time) HealthView {
	v := HealthView{
		EnvoyConnected:   h.EnvoyConnected,
		AckedVersion:     h.AckedVersion,
		PublishedVersion: h.PublishedVersion,
		InSync:           h.PublishedVersion != "" && h.AckedVersion == h.PublishedVersion,
		Rejected:         h.Rejected,
		SourceSynced:     h.SourceSynced,
		AllowlistVersion: h.AllowlistVersion,
		Outbound:         h.Outbound,
		Parts:            h.Parts,
		PartsAgree:       len(h.Parts) > 0,
		Now:              now.UTC(),
	}
	for _, p := range h.Parts {
		if p.Allowlist == "" || p.Allowlist != h.Parts[0].Allowlist {
			v.PartsAgree = false
		}
	}
	if v.Parts == nil {
		v.Parts = []Part{}
	}
	if !h.LastSnapshot.IsZero() {
		t := h.LastSnapshot.UTC()
		v.LastSnapshot = &t
	}
	return v
}

// writeJSON answers 200 with v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// An encoding error can only be a write error: the client is gone.
	_ = json.NewEncoder(w).Encode(v)
}
