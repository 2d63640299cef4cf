package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// TestRedirectChainIsOneChain: A answers 301 -> B, B answers 302 -> C, and
// C is unlisted. The gateway records one chain of three hops, C's hop is
// denied (as soon as B's redirect is seen, and again when the client
// follows it), and the denial's log line shows the whole chain.
func TestRedirectChainIsOneChain(t *testing.T) {
	skipShort(t)
	upstream := func(status int, location string) int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", location)
			w.WriteHeader(status)
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		return ln.Addr().(*net.TCPAddr).Port
	}
	aPort := upstream(http.StatusMovedPermanently, "http://b.chain.test/next")
	bPort := upstream(http.StatusFound, "http://c.chain.test/final?x=1")
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", staticEntry("a", "a.chain.test", 80, "HTTP", aPort))
	writeFile(t, dir, "b.yaml", staticEntry("b", "b.chain.test", 80, "HTTP", bPort))
	g := startGateway(t, dir)
	eventually(t, 30*time.Second, "gateway serving", g.wantStatus("c.chain.test", 403))

	// A client that follows redirects, every name steered to the gateway.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, g.Addr(80))
		},
	}}
	resp, err := client.Get("http://a.chain.test/start")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Request.URL.Host != "c.chain.test" {
		t.Fatalf("the client ended at %s with %d, want c.chain.test denied", resp.Request.URL, resp.StatusCode)
	}

	var chain decision.ChainView
	eventually(t, 10*time.Second, "chain recorded", func() error {
		var out struct {
			Chains []decision.ChainView `json:"chains"`
		}
		if err := g.tryAPIGet("/api/v1/chains", &out); err != nil {
			return err
		}
		for _, c := range out.Chains {
			if len(c.Hops) > 0 && c.Hops[0].Host == "a.chain.test" {
				chain = c
				if len(c.Hops) == 3 && len(c.Hops[2].DecisionIDs) == 2 {
					return nil
				}
			}
		}
		return fmt.Errorf("chains %+v", out.Chains)
	})
	type hop struct {
		URL     string
		Status  int
		Verdict vocab.Verdict
	}
	var got []hop
	for _, h := range chain.Hops {
		got = append(got, hop{h.URL, h.Status, h.Verdict})
	}
	want := []hop{
		{"http://a.chain.test/start", 301, "allow"},
		{"http://b.chain.test/next", 302, "allow"},
		{"http://c.chain.test/final?x=1", 403, "deny"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("chain hops\n got %v\nwant %v", got, want)
	}
	if !chain.Denied {
		t.Error("chain not marked denied")
	}

	// The redirect to the unlisted host is its own decision, reported from
	// B's answer, with the chain in it.
	ds := g.decisions(t, url.Values{"reason": {"redirect_to_unlisted_host"}})
	if len(ds) != 1 {
		t.Fatalf("redirect_to_unlisted_host decisions: %+v, want 1", ds)
	}
	d := ds[0]
	if d.Host != "c.chain.test" || d.Verdict != "deny" || d.Chain == nil || d.Chain.Hop != 2 || d.Chain.ID != chain.ID {
		t.Errorf("denied hop decision %+v", d)
	}
	wantLine := "http://a.chain.test/start 301 -> http://b.chain.test/next 302 -> http://c.chain.test/final?x=1"
	eventually(t, 5*time.Second, "log line with the chain", func() error {
		for _, line := range strings.Split(g.Logs(), "\n") {
			if strings.Contains(line, `"reason":"redirect_to_unlisted_host"`) && strings.Contains(line, wantLine) && strings.Contains(line, chain.ID) {
				return nil
			}
		}
		return fmt.Errorf("no log line with %q", wantLine)
	})
}
