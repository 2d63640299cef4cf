package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// API paths of the decisions.
const (
	decisionsPath = "/api/v1/decisions"
	streamPath    = "/api/v1/decisions/stream"
)

var (
	knownVerdicts = vocab.Strings(vocab.Verdicts())
	knownLayers   = vocab.Strings(vocab.Layers())
)

// decisionsFlags are the decisions command's flags.
type decisionsFlags struct {
	verdict, layer, reason, source, host string
	since                                string
	limit                                int
	follow                               bool
	output                               string
}

// filters are the query parameters that select decisions, for the list
// and the stream alike.
func (f *decisionsFlags) filters() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"verdict": f.verdict, "layer": f.layer, "reason": f.reason, "source": f.source, "host": f.host} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

func parseDecisionsFlags(g *global, args []string, stderr io.Writer) (*decisionsFlags, error) {
	f := &decisionsFlags{}
	fs := newFlagSet("decisions", stderr)
	g.register(fs)
	fs.StringVar(&f.verdict, "verdict", "", "verdicts, comma-separated: "+strings.Join(knownVerdicts, ", "))
	fs.StringVar(&f.layer, "layer", "", "layers, comma-separated: "+strings.Join(knownLayers, ", "))
	fs.StringVar(&f.reason, "reason", "", "reasons, comma-separated (e.g. not_in_registry)")
	fs.StringVar(&f.source, "source", "", "client address, address:port or CIDR prefix")
	fs.StringVar(&f.host, "host", "", `host, "*.suffix" or "~substring"`)
	fs.StringVar(&f.since, "since", "15m", "duration or RFC 3339 time")
	fs.IntVar(&f.limit, "limit", 100, "most decisions listed")
	fs.BoolVar(&f.follow, "follow", false, "stream new decisions until interrupted")
	fs.StringVar(&f.output, "o", "table", "output format: table or json")
	fs.StringVar(&f.output, "output", "table", "output format: table or json")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := checkList("verdict", f.verdict, knownVerdicts); err != nil {
		return nil, err
	}
	if err := checkList("layer", f.layer, knownLayers); err != nil {
		return nil, err
	}
	if err := checkSince("since", f.since); err != nil {
		return nil, err
	}
	if f.limit < 1 {
		return nil, usagef("--limit %d: use at least 1", f.limit)
	}
	return f, nil
}

// checkList refuses values of a comma-separated list outside known.
func checkList(flagName, list string, known []string) error {
	if list == "" {
		return nil
	}
	for _, v := range strings.Split(list, ",") {
		if v = strings.TrimSpace(v); v != "" && !slices.Contains(known, v) {
			return usagef("--%s: unknown value %q; use %s", flagName, v, strings.Join(known, ", "))
		}
	}
	return nil
}

// decisionsCommand lists recorded decisions oldest first and, with
// --follow, streams the new ones.
func decisionsCommand(ctx context.Context, g *global, args []string, stdout, stderr io.Writer) error {
	f, err := parseDecisionsFlags(g, args, stderr)
	if err != nil {
		return err
	}
	c, err := newClient(g)
	if err != nil {
		return err
	}
	p, err := newPrinter(f.output, stdout)
	if err != nil {
		return err
	}
	q := f.filters()
	q.Set("since", f.since)
	q.Set("limit", strconv.Itoa(f.limit))
	lastID, err := listDecisions(ctx, c, q, p)
	if err != nil {
		return err
	}
	if !f.follow {
		return nil
	}
	// The stream starts at subscription; backlog asks it to send first
	// what was stored in between (matching since and after the last
	// decision printed), so nothing is lost across the two requests.
	q = f.filters()
	q.Set("since", f.since)
	q.Set("backlog", strconv.Itoa(f.limit))
	if lastID > 0 {
		q.Set("after_id", strconv.FormatUint(lastID, 10))
	}
	return followDecisions(ctx, c, q, p, stderr)
}

// listResponse is GET /api/v1/decisions: newest first.
type listResponse struct {
	Decisions []json.RawMessage `json:"decisions"`
	Count     int               `json:"count"`
}

// listDecisions prints the matching decisions oldest first and returns
// the highest ID printed.
func listDecisions(ctx context.Context, c *client, q url.Values, p printer) (uint64, error) {
	body, err := c.getBody(ctx, decisionsPath, q)
	if err != nil {
		return 0, err
	}
	var resp listResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return 0, fmt.Errorf("GET %s: unexpected response: %w", c.url(decisionsPath, q), err)
	}
	var lastID uint64
	for _, raw := range slices.Backward(resp.Decisions) {
		d, err := decodeDecision(raw)
		if err != nil {
			return 0, fmt.Errorf("GET %s: %w", c.url(decisionsPath, q), err)
		}
		if err := p.print(raw, d); err != nil {
			return 0, err
		}
		lastID = max(lastID, d.ID)
	}
	return lastID, p.flush()
}

// followDecisions prints the decisions the stream sends until it ends or
// ctx is done. A "dropped" event (the server skipped decisions this
// client was too slow for) is a warning on stderr.
func followDecisions(ctx context.Context, c *client, q url.Values, p printer, stderr io.Writer) error {
	resp, err := c.get(ctx, streamPath, q, "text/event-stream")
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	err = readEvents(resp.Body, func(e event) error {
		switch e.Type {
		case "decision":
			d, err := decodeDecision(json.RawMessage(e.Data))
			if err != nil {
				return err
			}
			if err := p.print(json.RawMessage(e.Data), d); err != nil {
				return err
			}
			return p.flush()
		case "dropped":
			var v struct {
				Dropped uint64 `json:"dropped"`
			}
			if err := json.Unmarshal([]byte(e.Data), &v); err != nil {
				return fmt.Errorf("dropped event %q: %w", e.Data, err)
			}
			fmt.Fprintf(stderr, "egressctl: warning: egressd dropped %d decisions this stream was too slow for\n", v.Dropped)
		}
		return nil
	})
	if ctx.Err() != nil {
		return nil // interrupted: a clean stop
	}
	if err != nil {
		return fmt.Errorf("GET %s: %w", c.url(streamPath, q), err)
	}
	return nil
}

// decodeDecision reads one Decision.
func decodeDecision(raw json.RawMessage) (*decision.Decision, error) {
	var d decision.Decision
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, errors.New("unexpected decision JSON: " + err.Error())
	}
	return &d, nil
}
