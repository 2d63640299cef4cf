package decision

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// FuzzAPIQuery: no query string makes the admin API's decision endpoints
// panic or fail with anything but a 400 that says why; a 200 is valid
// JSON, and a query that parses can be matched.
func FuzzAPIQuery(f *testing.F) {
	for _, s := range []string{
		"verdict=deny&layer=http", "host=*.example.com", "host=~evil", "source=10.0.0.0/8", "source=10.0.0.1:5000",
		"since=15m&until=2026-01-01T00:00:00Z", "since=-1h", "limit=99999999999999999999", "after_id=18446744073709551616",
		"top=3", "top=-1", "reason=not_in_registry,blocked_address", "verdict=deny&verdict=allow", "%zz", "host=%00",
		"source=[::1]:80", "source=::ffff:10.0.0.1/104", "chain=abc&serviceentry=ns/name", "host=*.", "host=" + string(make([]byte, 300)),
	} {
		f.Add(s)
	}
	h := NewHandler(queryFixture(), nil)
	f.Fuzz(func(t *testing.T, raw string) {
		for _, path := range []string{"/api/v1/decisions", "/api/v1/aggregates", "/api/v1/chains"} {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.URL.Path, req.URL.RawQuery = path, raw
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			switch w.Code {
			case http.StatusOK:
				if !json.Valid(w.Body.Bytes()) {
					t.Fatalf("%s?%s: invalid JSON %q", path, raw, w.Body.String())
				}
			case http.StatusBadRequest:
				if w.Body.Len() == 0 {
					t.Fatalf("%s?%s: 400 without a reason", path, raw)
				}
			default:
				t.Fatalf("%s?%s: status %d: %s", path, raw, w.Code, w.Body.String())
			}
		}
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		q, err := ParseQuery(v, now)
		if err != nil {
			return
		}
		_ = q.Match(&Decision{Host: "a.example.com", Layer: vocab.LayerHTTP, Verdict: vocab.VerdictDeny})
	})
}
