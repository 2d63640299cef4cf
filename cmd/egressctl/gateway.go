package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/egressd/egressd/egress/dashboard"
)

// gatewayPath is the API path of the gateway model.
const gatewayPath = "/api/v1/gateway"

// gatewayCommand prints the gateway model egressd last published: every
// listener's filter chains in words (table), or the whole model as YAML
// or JSON.
func gatewayCommand(ctx context.Context, g *global, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gateway", stderr)
	g.register(fs)
	var output string
	fs.StringVar(&output, "o", "table", "output format: table, yaml or json")
	fs.StringVar(&output, "output", "table", "output format: table, yaml or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if output != "table" && output != "yaml" && output != "json" {
		return usagef("-o %q: use table, yaml or json", output)
	}
	c, err := newClient(g)
	if err != nil {
		return err
	}
	if output == "yaml" {
		body, err := c.getBody(ctx, gatewayPath, url.Values{"format": {"yaml"}})
		if err != nil {
			return err
		}
		_, err = stdout.Write(body)
		return err
	}
	body, err := c.getBody(ctx, gatewayPath, nil)
	if err != nil {
		return err
	}
	var v dashboard.GatewayView
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("GET %s: unexpected response: %w", c.url(gatewayPath, nil), err)
	}
	if !v.Loaded {
		return fmt.Errorf("egressd has published no gateway configuration yet")
	}
	if output == "json" {
		out, err := json.MarshalIndent(v.Gateway, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", out)
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "LISTENER\tCHAIN\tMATCHES\tDOES")
	last := ""
	for _, r := range v.Rows {
		listener := fmt.Sprintf("%s :%d", r.Listener, r.Listen)
		if r.Listener == last {
			listener = ""
		}
		last = r.Listener
		chain := r.Chain
		if r.Default {
			chain += " (default)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", listener, chain, oneLine(r.Match), oneLine(r.Action))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	gw := v.Gateway
	fmt.Fprintf(stdout, "\n%s, allowlist %s: %d filter chains, %d clusters\n", gw.Outbound, gw.Allowlist, len(v.Rows), v.Clusters)
	for _, w := range gw.Warnings {
		fmt.Fprintf(stdout, "left out: %s\n", w)
	}
	return nil
}

// oneLine keeps a cell on its line: tabs and newlines become spaces.
func oneLine(s string) string {
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
}
