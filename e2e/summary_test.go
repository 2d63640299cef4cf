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
)

// TestAllowedSummaries: allowed requests to a listed host are counted by
// the gateway and reported as summaries (count and bytes), while a
// denial and a redirect are still one decision each; with
// --allowed-flush 0 every allowed request is one decision again.
func TestAllowedSummaries(t *testing.T) {
	skipShort(t)
	body := strings.Repeat("x", 100)
	web := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "http://web.summary.test/", http.StatusFound)
			return
		}
		fmt.Fprint(w, body)
	}))
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", staticEntry("web", "web.summary.test", 80, "HTTP", web)+"---\n"+staticEntry("probe", "probe.summary.test", 80, "HTTP", web))

	for _, mode := range []struct {
		name      string
		flags     []string
		summaries bool
	}{{"summarized", nil, true}, {"one by one", []string{"--allowed-flush", "0"}, false}} {
		t.Run(mode.name, func(t *testing.T) {
			g := startGateway(t, dir, append([]string{"--no-envoy-access-log"}, mode.flags...)...)
			eventually(t, 30*time.Second, "gateway serving", g.wantStatus("probe.summary.test", 200))
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, g.Addr(80))
				},
			}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			get := func(rawURL string) int {
				resp, err := client.Get(rawURL)
				if err != nil {
					t.Fatal(err)
				}
				readAll(resp)
				resp.Body.Close()
				return resp.StatusCode
			}
			const n = 25
			for range n {
				if code := get("http://web.summary.test/page"); code != 200 {
					t.Fatalf("listed host: %d", code)
				}
			}
			if code := get("http://other.summary.test/"); code != 403 {
				t.Fatalf("unlisted host: %d", code)
			}
			if code := get("http://web.summary.test/moved"); code != 302 {
				t.Fatalf("redirect: %d", code)
			}
			// The denial and the redirect: one decision each, whatever the mode.
			g.waitDecision(t, "the denial", url.Values{"host": {"other.summary.test"}, "verdict": {"deny"}}, func(d decision.Decision) error {
				if d.Path != "/" || d.Count != 0 {
					return fmt.Errorf("denial %+v", d)
				}
				return nil
			})
			g.waitDecision(t, "the redirect", url.Values{"host": {"web.summary.test"}, "verdict": {"allow"}}, func(d decision.Decision) error {
				if d.Status != 302 && d.Count == 0 {
					return fmt.Errorf("not the redirect: %+v", d)
				}
				return nil
			})
			var requests, bytes, individual uint64
			eventually(t, 15*time.Second, "every allowed request counted", func() error {
				requests, bytes, individual = 0, 0, 0
				for _, d := range g.decisions(t, url.Values{"host": {"web.summary.test"}, "verdict": {"allow"}, "limit": {"1000"}}) {
					switch {
					case d.Count > 0:
						requests += d.Count
						bytes += d.BytesSent
						if d.Path != "" || d.Source.IsValid() || d.Gateway == "" {
							return fmt.Errorf("summary %+v", d)
						}
					case d.Status == 200:
						requests++
						individual++
					}
				}
				if requests != n {
					return fmt.Errorf("%d of %d allowed requests counted", requests, n)
				}
				return nil
			})
			if mode.summaries && (individual != 0 || bytes < n*uint64(len(body))) {
				t.Errorf("summarized: %d requests reported one by one, %d bytes sent counted", individual, bytes)
			}
			if !mode.summaries && individual != n {
				t.Errorf("one by one: %d of %d allowed requests reported individually", individual, n)
			}
			if got := g.metric(t, `egressd_decisions_total{layer="http",reason="allowed",verdict="allow"}`); got < n {
				t.Errorf("egressd_decisions_total for allowed HTTP = %v, want at least %d", got, n)
			}
		})
	}
}
