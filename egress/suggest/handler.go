package suggest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry"
)

// DefaultSince is how far back the Handler looks without a since parameter.
const DefaultSince = 24 * time.Hour

// now is the Handler's clock.
var now = time.Now

// params are the query parameters the Handler reads.
var params = []string{"since", "namespace", "wildcard_min", "format"}

// Handler serves suggestions for the denials recorded since a time (GET
// only). Query parameters:
//
//	since         RFC 3339 time, or a Go duration meaning that long ago ("1h"); default 24h
//	namespace     metadata.namespace of the entries; default none
//	wildcard_min  as Options.WildcardMin; default 3
//	format        yaml (default, application/yaml) or json ({"suggestions": [...]})
//
// A bad parameter gets 400 with a plain message that names it. decisions
// returns the decisions recorded since a time; allowlist, which may be nil
// or return nil, the allowlist in force.
func Handler(decisions func(since time.Time) []*decision.Decision, allowlist func() *serviceentry.Allowlist) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method "+r.Method+" not allowed; use GET", http.StatusMethodNotAllowed)
			return
		}
		q, err := parseQuery(r.URL.Query(), now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if allowlist != nil {
			q.opts.Allowlist = allowlist()
		}
		ss := Suggest(decisions(q.since), q.opts)
		if q.json {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(struct {
				Suggestions []Suggestion `json:"suggestions"`
			}{ss})
			return
		}
		out, err := YAML(ss, q.opts)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(out)
	})
}

// query is one parsed request.
type query struct {
	since time.Time
	opts  Options
	json  bool
}

// parseQuery reads the parameters; the error names the bad one.
func parseQuery(v url.Values, now time.Time) (query, error) {
	q := query{since: now.Add(-DefaultSince)}
	for k := range v {
		if !slices.Contains(params, k) {
			return q, fmt.Errorf("unknown parameter %q; use %s", k, strings.Join(params, ", "))
		}
	}
	if s := v.Get("since"); s != "" {
		t, err := parseSince(s, now)
		if err != nil {
			return q, err
		}
		q.since = t
	}
	if ns := v.Get("namespace"); ns != "" {
		if !serviceentry.IsDNS1123Label(ns) {
			return q, fmt.Errorf("namespace: %q is not a valid namespace: use at most 63 lower-case letters, digits and \"-\", starting and ending with a letter or digit", ns)
		}
		q.opts.Namespace = ns
	}
	if s := v.Get("wildcard_min"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return q, fmt.Errorf("wildcard_min: %q is not a whole number; use e.g. 3, or -1 to turn wildcards off", s)
		}
		q.opts.WildcardMin = n
	}
	switch f := v.Get("format"); f {
	case "", "yaml":
	case "json":
		q.json = true
	default:
		return q, fmt.Errorf("format: %q is not a format; use yaml or json", f)
	}
	return q, nil
}

// parseSince reads an RFC 3339 time or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("since: %q is neither an RFC 3339 time (2006-01-02T15:04:05Z) nor a duration (1h, 30m)", s)
	}
	if d < 0 {
		return time.Time{}, fmt.Errorf("since: %q is negative; give how long ago, e.g. 1h", s)
	}
	return now.Add(-d), nil
}
