package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
)

// suggestionsPath is the API path of the suggestions.
const suggestionsPath = "/api/v1/suggestions"

// suggestCommand prints ServiceEntries that would allow the recorded
// denials, as YAML ready to apply or as JSON.
func suggestCommand(ctx context.Context, g *global, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("suggest", stderr)
	g.register(fs)
	since := fs.String("since", "24h", "duration or RFC 3339 time")
	namespace := fs.String("namespace", "", "metadata.namespace of the entries")
	wildcardMin := fs.Int("wildcard-min", 3, `hosts under one domain that make a "*.domain" (-1: never)`)
	var output string
	fs.StringVar(&output, "o", "yaml", "output format: yaml or json")
	fs.StringVar(&output, "output", "yaml", "output format: yaml or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkSince("since", *since); err != nil {
		return err
	}
	if output != "yaml" && output != "json" {
		return usagef("-o %q: use yaml or json", output)
	}
	c, err := newClient(g)
	if err != nil {
		return err
	}

	q := url.Values{"since": {*since}, "format": {output}}
	if *namespace != "" {
		q.Set("namespace", *namespace)
	}
	// Leave the default to egressd unless asked.
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "wildcard-min" {
			q.Set("wildcard_min", strconv.Itoa(*wildcardMin))
		}
	})
	body, err := c.getBody(ctx, suggestionsPath, q)
	if err != nil {
		return err
	}
	empty, err := noSuggestions(output, body)
	if err != nil {
		return fmt.Errorf("GET %s: unexpected response: %w", c.url(suggestionsPath, q), err)
	}
	if empty {
		fmt.Fprintf(stderr, "egressctl: no suggestions: no denials a ServiceEntry would fix since %s\n", *since)
		if output == "yaml" {
			return nil
		}
	}
	_, err = stdout.Write(body)
	return err
}

// noSuggestions reports whether body holds no suggestion.
func noSuggestions(format string, body []byte) (bool, error) {
	if format == "yaml" {
		return len(bytes.TrimSpace(body)) == 0, nil
	}
	var v struct {
		Suggestions []json.RawMessage `json:"suggestions"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return false, err
	}
	return len(v.Suggestions) == 0, nil
}
