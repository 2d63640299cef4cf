package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/egressd/egressd/egress/decision"
)

// apiGet fetches a path of egressd's admin API and decodes its JSON.
func (g *Gateway) apiGet(t *testing.T, path string, v any) {
	t.Helper()
	if err := g.tryAPIGet(path, v); err != nil {
		t.Fatal(err)
	}
}

func (g *Gateway) tryAPIGet(path string, v any) error {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + g.EgressdAdmin + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// decisions returns the recorded decisions matching the query parameters.
func (g *Gateway) decisions(t *testing.T, params url.Values) []decision.Decision {
	t.Helper()
	var out struct {
		Decisions []decision.Decision `json:"decisions"`
	}
	g.apiGet(t, "/api/v1/decisions?"+params.Encode(), &out)
	return out.Decisions
}

// metric returns the value of one sample of egressd's /metrics ("" labels:
// the unlabelled sample), or 0 when absent.
func (g *Gateway) metric(t testing.TB, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.EgressdAdmin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// paced calls fn(i) for i in [0, n) at rate calls per second from a
// bounded pool of workers. It is bounded in count (n) and time (n/rate
// plus the workers' own timeouts). It returns how long the calls took.
func paced(n, rate, workers int, fn func(i int)) time.Duration {
	start := time.Now()
	jobs := make(chan int, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				fn(i)
			}
		}()
	}
	interval := time.Second / time.Duration(rate)
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return time.Since(start)
}

// TestDecisionStreamLosesNothing: under a sustained load of denied HTTP
// requests, unknown-SNI TLS connections and refused DNS queries (together
// over 2,000 denials per second for 10 s), every single one becomes exactly
// one decision event with the right fields: none lost, none duplicated.
func TestDecisionStreamLosesNothing(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	// Without Envoy's own file access log: egressd's decisions are the log.
	g := startGateway(t, dir, "--decisions-kept", "100000", "--log-level", "info", "--no-envoy-access-log")
	eventually(t, 30*time.Second, "gateway serving", g.wantStatus("warmup.denied.test", 403))
	// The warm-up denials: wait until they are recorded, then count from here.
	eventually(t, 10*time.Second, "warm-up recorded", func() error {
		if len(g.decisions(t, url.Values{"host": {"warmup.denied.test"}})) == 0 {
			return fmt.Errorf("no decision yet")
		}
		return nil
	})

	base := map[string]float64{}
	for _, layer := range []string{"http", "tls", "dns"} {
		base[layer] = g.metric(t, fmt.Sprintf(`egressd_decisions_total{layer=%q,reason="not_in_registry",verdict="deny"}`, layer))
	}

	const perKind, ratePerKind, seconds = 7000, 700, 10 // 3 x 700/s = 2,100 denials/s for 10 s
	var httpFailures, tlsFailures, dnsFailures atomic.Int64
	var wg sync.WaitGroup
	elapsed := make([]time.Duration, 3)
	httpClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, g.Addr(80))
		},
	}}
	wg.Add(3)
	go func() {
		defer wg.Done()
		elapsed[0] = paced(perKind, ratePerKind, 64, func(i int) {
			resp, err := httpClient.Get(fmt.Sprintf("http://load.denied.test/req/%d", i))
			if err != nil {
				httpFailures.Add(1)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				httpFailures.Add(1)
			}
		})
	}()
	go func() {
		defer wg.Done()
		elapsed[1] = paced(perKind, ratePerKind, 64, func(i int) {
			raw, err := net.DialTimeout("tcp", g.Addr(443), 5*time.Second)
			if err != nil {
				tlsFailures.Add(1)
				return
			}
			defer raw.Close()
			_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
			conn := tls.Client(raw, &tls.Config{ServerName: fmt.Sprintf("n%d.unknown.test", i), InsecureSkipVerify: true})
			if err := conn.Handshake(); err == nil {
				tlsFailures.Add(1) // the gateway must not complete it
			}
		})
	}()
	go func() {
		defer wg.Done()
		client := &dns.Client{Timeout: 5 * time.Second}
		elapsed[2] = paced(perKind, ratePerKind, 32, func(i int) {
			m := new(dns.Msg)
			m.SetQuestion(fmt.Sprintf("q%d.refused.test.", i), dns.TypeA)
			r, _, err := client.Exchange(m, g.DNSAddr)
			if err != nil || r.Rcode != dns.RcodeNameError {
				dnsFailures.Add(1)
			}
		})
	}()
	wg.Wait()
	for i, kind := range []string{"HTTP", "TLS", "DNS"} {
		rate := float64(perKind) / elapsed[i].Seconds()
		t.Logf("%s: %d denials in %s (%.0f/s)", kind, perKind, elapsed[i].Round(time.Millisecond), rate)
		if elapsed[i] > (seconds+2)*time.Second {
			t.Errorf("%s load took %s: the rate fell below the target", kind, elapsed[i])
		}
	}
	if n := httpFailures.Load() + tlsFailures.Load() + dnsFailures.Load(); n > 0 {
		t.Fatalf("client-side failures: http %d, tls %d, dns %d", httpFailures.Load(), tlsFailures.Load(), dnsFailures.Load())
	}

	// Exactly one decision per denial, with the right fields.
	check := func(kind string, params url.Values, key func(decision.Decision) (string, error)) {
		t.Helper()
		var got []decision.Decision
		eventually(t, 20*time.Second, kind+" decisions recorded", func() error {
			got = g.decisions(t, params)
			if len(got) < perKind {
				return fmt.Errorf("%d of %d", len(got), perKind)
			}
			return nil
		})
		time.Sleep(500 * time.Millisecond) // late duplicates would show now
		got = g.decisions(t, params)
		seen := map[string]int{}
		for _, d := range got {
			k, err := key(d)
			if err != nil {
				t.Fatalf("%s decision %+v: %v", kind, d, err)
			}
			seen[k]++
		}
		if len(got) != perKind || len(seen) != perKind {
			t.Errorf("%s: %d decisions for %d distinct denials, want exactly %d", kind, len(got), len(seen), perKind)
		}
		for k, n := range seen {
			if n != 1 {
				t.Errorf("%s: %s recorded %d times", kind, k, n)
			}
		}
	}
	limit := fmt.Sprint(3 * perKind)
	check("HTTP", url.Values{"layer": {"http"}, "host": {"load.denied.test"}, "limit": {limit}}, func(d decision.Decision) (string, error) {
		if d.Verdict != "deny" || d.Reason != "not_in_registry" || d.Status != 403 || d.Port != 80 || d.Method != "GET" ||
			!strings.HasPrefix(d.Path, "/req/") || !d.Source.IsValid() {
			return "", fmt.Errorf("wrong fields")
		}
		return d.Path, nil
	})
	check("TLS", url.Values{"layer": {"tls"}, "host": {"*.unknown.test"}, "limit": {limit}}, func(d decision.Decision) (string, error) {
		if d.Verdict != "deny" || d.Reason != "not_in_registry" || d.Port != 443 || d.Protocol != "TLS" || !d.Source.IsValid() {
			return "", fmt.Errorf("wrong fields")
		}
		return d.Host, nil
	})
	check("DNS", url.Values{"layer": {"dns"}, "host": {"*.refused.test"}, "limit": {limit}}, func(d decision.Decision) (string, error) {
		if d.Verdict != "deny" || d.Reason != "not_in_registry" || d.Protocol != "DNS/A" || !d.Source.IsValid() {
			return "", fmt.Errorf("wrong fields")
		}
		return d.Host, nil
	})
	if n := g.metric(t, `egressd_decisions_dropped_total{consumer="stream"}`); n != 0 {
		t.Errorf("%v decisions dropped at intake", n)
	}
	for _, c := range []string{"log", "metrics", "store"} {
		if n := g.metric(t, fmt.Sprintf(`egressd_decisions_dropped_total{consumer=%q}`, c)); n != 0 {
			t.Errorf("%v decisions dropped for consumer %s", n, c)
		}
	}
	for layer, before := range base {
		if got := g.metric(t, fmt.Sprintf(`egressd_decisions_total{layer=%q,reason="not_in_registry",verdict="deny"}`, layer)) - before; got != perKind {
			t.Errorf("egressd_decisions_total for %s grew by %v, want %d", layer, got, perKind)
		}
	}
	// Every denial is in the log: a line of its own, or counted in the
	// summary line of the identical ones folded into a line (repeated), or
	// in the summary of a window whose line budget was spent (folded).
	lines, repeated, folded := 0, 0, 0
	ours := func(host string) bool {
		return host == "load.denied.test" || strings.HasSuffix(host, ".unknown.test") || strings.HasSuffix(host, ".refused.test")
	}
	for _, line := range strings.Split(g.Logs(), "\n") {
		var l struct {
			Msg      string `json:"msg"`
			Host     string `json:"host"`
			Reason   string `json:"reason"`
			Repeated int    `json:"repeated"`
			Folded   int    `json:"folded"`
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		switch {
		case l.Msg == decision.MsgDenied && ours(l.Host):
			lines++
		case l.Msg == decision.MsgRepeated && ours(l.Host):
			repeated += l.Repeated
		case l.Msg == decision.MsgFolded && l.Reason == "not_in_registry":
			folded += l.Folded
		}
	}
	t.Logf("log: %d lines, %d repeats and %d more folded into summaries", lines, repeated, folded)
	if lines+repeated+folded != 3*perKind {
		t.Errorf("%d denial log lines + %d repeated + %d folded, want %d", lines, repeated, folded, 3*perKind)
	}
	if lines >= 3*perKind {
		t.Errorf("%d lines for %d denials: nothing was folded", lines, 3*perKind)
	}
}
