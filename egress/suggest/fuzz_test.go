package suggest

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/decision"
)

// FuzzSuggestionsQuery: no query string makes /api/v1/suggestions panic
// or answer anything but 200 or a 400 that says why.
func FuzzSuggestionsQuery(f *testing.F) {
	for _, s := range []string{"since=1h", "since=2026-01-01T00:00:00Z", "namespace=egress", "wildcard_min=-1", "format=json",
		"wildcard_min=99999999999999999999", "since=-5m", "namespace=A_B", "format=xml", "x=1", "%", "since=" + string(make([]byte, 64))} {
		f.Add(s)
	}
	recorded := []*decision.Decision{deny("tls", "a.example.com", 443), deny("http", "b.example.com", 80), deny("dns", "c.example.com", 0)}
	h := Handler(func(time.Time) []*decision.Decision { return recorded }, nil)
	f.Fuzz(func(t *testing.T, raw string) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/suggestions", nil)
		req.URL.RawQuery = raw
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch {
		case w.Code == http.StatusOK:
		case w.Code == http.StatusBadRequest && w.Body.Len() > 0:
		default:
			t.Fatalf("?%s: status %d: %s", raw, w.Code, w.Body.String())
		}
	})
}
