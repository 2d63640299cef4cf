package decision

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// ParseQuery reads a Query from URL parameters:
//
//	verdict, layer, reason  comma-separated lists (the parameter may also
//	                        repeat), each value one of the constants
//	source                  address, address:port or CIDR prefix
//	host                    exact, "*.suffix" or "~substring"
//	serviceentry            "namespace/name"
//	chain                   a redirect chain ID
//	since, until            an RFC 3339 time, or a positive Go duration
//	                        ("15m") meaning that long before now
//	after_id                a decision ID
//	limit                   a count, 0 for the default
//
// Other parameters are ignored. An invalid value is an error naming the
// parameter and the value.
func ParseQuery(v url.Values, now time.Time) (Query, error) {
	var q Query
	var err error
	if q.Verdicts, err = parseList(v, "verdict", vocab.Verdicts()); err != nil {
		return Query{}, err
	}
	if q.Layers, err = parseList(v, "layer", vocab.Layers()); err != nil {
		return Query{}, err
	}
	if q.Reasons, err = parseList(v, "reason", vocab.Reasons()); err != nil {
		return Query{}, err
	}
	if q.Source = strings.TrimSpace(v.Get("source")); q.Source != "" {
		if _, ok := parseSource(q.Source); !ok {
			return Query{}, fmt.Errorf("source: %q is not an address, address:port or CIDR prefix (like 10.0.0.1, 10.0.0.1:5000 or 10.0.0.0/8)", q.Source)
		}
	}
	if q.Host = strings.TrimSpace(v.Get("host")); q.Host != "" {
		if err := checkHost(q.Host); err != nil {
			return Query{}, err
		}
	}
	q.ServiceEntry = strings.TrimSpace(v.Get("serviceentry"))
	q.ChainID = strings.TrimSpace(v.Get("chain"))
	if q.Since, err = parseTime(v, "since", now); err != nil {
		return Query{}, err
	}
	if q.Until, err = parseTime(v, "until", now); err != nil {
		return Query{}, err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return Query{}, fmt.Errorf("until: %s is before since %s", q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	}
	if s := v.Get("after_id"); s != "" {
		if q.AfterID, err = strconv.ParseUint(s, 10, 64); err != nil {
			return Query{}, fmt.Errorf("after_id: %q is not a decision ID (a non-negative integer)", s)
		}
	}
	if s := v.Get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 0 {
			return Query{}, fmt.Errorf("limit: %q is not a non-negative integer", s)
		}
	}
	return q, nil
}

// parseList reads a comma-separated list parameter whose values must be in
// allowed.
func parseList[T ~string](v url.Values, name string, allowed []T) ([]T, error) {
	var out []T
	for _, raw := range v[name] {
		for _, s := range strings.Split(raw, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if !slices.Contains(allowed, T(s)) {
				names := make([]string, len(allowed))
				for i, a := range allowed {
					names[i] = string(a)
				}
				return nil, fmt.Errorf("%s: unknown value %q (want one of %s)", name, s, strings.Join(names, ", "))
			}
			if !slices.Contains(out, T(s)) {
				out = append(out, T(s))
			}
		}
	}
	return out, nil
}

// checkHost rejects host patterns that cannot match anything useful.
func checkHost(h string) error {
	if rest, ok := strings.CutPrefix(h, "~"); ok {
		if rest == "" {
			return fmt.Errorf("host: %q has nothing after \"~\" (want ~substring)", h)
		}
		return nil
	}
	rest := strings.TrimPrefix(h, "*.")
	switch {
	case h == "*" || rest == "" || rest == ".":
		return fmt.Errorf("host: %q matches everything; leave host out instead", h)
	case strings.Contains(rest, "*"):
		return fmt.Errorf("host: %q: a wildcard is only allowed as a leading \"*.\" (like *.example.com); use ~substring to search", h)
	}
	return nil
}

// parseTime reads an RFC 3339 time or a duration before now.
func parseTime(v url.Values, name string, now time.Time) (time.Time, error) {
	s := strings.TrimSpace(v.Get(name))
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%s: %q is neither an RFC 3339 time (2006-01-02T15:04:05Z) nor a positive duration (15m, 2h)", name, s)
}
