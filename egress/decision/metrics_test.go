package decision

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/egressd/egressd/serviceentry/vocab"
)

func TestMetricsDecisionsTotal(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(MetricsConfig{Registerer: reg})
	for _, d := range []*Decision{
		{Layer: vocab.LayerDNS, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, Host: "a.test"},
		{Layer: vocab.LayerDNS, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, Host: "b.test"},
		{Layer: vocab.LayerHTTP, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonNotInRegistry, Host: "c.test", Port: 80},
		{Layer: vocab.LayerTLS, Verdict: vocab.VerdictAuditDeny, Reason: vocab.ReasonNoSNI, Port: 443},
		// A summary of 40 allowed requests counts 40.
		{Layer: vocab.LayerHTTP, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, Host: "e.test", Port: 80, Count: 40},
		// Values outside the fixed sets must not become label values.
		{Layer: "quic", Verdict: "maybe", Reason: "bad\xffutf8", Host: "d.test"},
		{Layer: "quic2", Verdict: "maybe", Reason: "other", Host: "d.test"},
	} {
		m.Consume(d)
	}
	want := `
# HELP egressd_decisions_total Decisions, by layer (dns, http, tls, tcp), verdict (allow, deny, audit-deny) and reason.
# TYPE egressd_decisions_total counter
egressd_decisions_total{layer="dns",reason="allowed",verdict="allow"} 2
egressd_decisions_total{layer="http",reason="allowed",verdict="allow"} 40
egressd_decisions_total{layer="http",reason="not_in_registry",verdict="deny"} 1
egressd_decisions_total{layer="tls",reason="no_sni",verdict="audit-deny"} 1
egressd_decisions_total{layer="unknown",reason="unknown",verdict="unknown"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "egressd_decisions_total"); err != nil {
		t.Error(err)
	}
	if n := len(m.(*metrics).byLabels); n != 4 {
		t.Errorf("label cache holds %d entries, want 4 (unknown values are not cached)", n)
	}
}

// topSeries returns the egressd_top_denied_destinations series.
func topSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "egressd_top_denied_destinations" {
			continue
		}
		if mf.GetType() != dto.MetricType_GAUGE {
			t.Errorf("type %v, want gauge", mf.GetType())
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestMetricsTopDeniedDestinations(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(MetricsConfig{Registerer: reg, TopN: 3}) // tracks 30

	// 1000 destinations seen once each, interleaved with four heavy
	// hitters, and allowed decisions that must not count.
	heavy := map[string]int{"a.test:443": 500, "b.test:443": 300, "c.test:80": 200, "d.test": 100}
	var stream []*Decision
	for i := range 1000 {
		stream = append(stream, &Decision{Layer: vocab.LayerHTTP, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonNotInRegistry, Host: fmt.Sprintf("rare%d.test", i), Port: 443})
	}
	add := func(n int, d Decision) {
		for range n {
			stream = append(stream, &d)
		}
	}
	add(300, Decision{Layer: vocab.LayerHTTP, Verdict: vocab.VerdictDeny, Host: "a.test", Port: 443})
	add(200, Decision{Layer: vocab.LayerTLS, Verdict: vocab.VerdictAuditDeny, Host: "a.test", Port: 443})
	add(300, Decision{Layer: vocab.LayerTLS, Verdict: vocab.VerdictDeny, Host: "b.test", Port: 443})
	add(200, Decision{Layer: vocab.LayerHTTP, Verdict: vocab.VerdictDeny, Host: "c.test", Port: 80})
	add(100, Decision{Layer: vocab.LayerDNS, Verdict: vocab.VerdictDeny, Host: "d.test"})
	add(5000, Decision{Layer: vocab.LayerHTTP, Verdict: vocab.VerdictAllow, Host: "allowed.test", Port: 443})
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })
	for _, d := range stream {
		m.Consume(d)
	}

	got := topSeries(t, reg)
	if len(got) != 3 {
		t.Fatalf("exported %d series, want 3: %v", len(got), got)
	}
	// Space-Saving overestimates by at most denied/capacity = 2100/30.
	const maxErr = 2100 / 30
	for _, key := range []string{"a.test:443", "b.test:443", "c.test:80"} {
		v, ok := got[key]
		if !ok {
			t.Errorf("%s missing from the top 3: %v", key, got)
			continue
		}
		if tc := float64(heavy[key]); v < tc || v > tc+maxErr {
			t.Errorf("%s: estimate %v, want within [%v, %v]", key, v, tc, tc+maxErr)
		}
	}
	if problems, err := testutil.CollectAndLint(m.(*metrics).top); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestMetricsConcurrentScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(MetricsConfig{Registerer: reg, TopN: 2})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 20000 {
			m.Consume(&Decision{Layer: vocab.LayerHTTP, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonNotInRegistry, Host: fmt.Sprintf("h%d.test", i%50), Port: 80})
		}
	})
	for range 50 {
		if got := topSeries(t, reg); len(got) > 2 {
			t.Fatalf("exported %d series, want at most 2", len(got))
		}
	}
	wg.Wait()
	if got := topSeries(t, reg); len(got) != 2 {
		t.Errorf("exported %d series, want 2", len(got))
	}
}

func TestDestinationKey(t *testing.T) {
	tests := map[string]struct {
		in   Decision
		want string
	}{
		"host and port":           {Decision{Host: "a.test", Port: 443}, "a.test:443"},
		"dns: host only":          {Decision{Host: "a.test", Layer: vocab.LayerDNS}, "a.test"},
		"destination addr:port":   {Decision{Destination: "192.0.2.1:5432", Port: 5432}, "192.0.2.1:5432"},
		"destination without":     {Decision{Destination: "192.0.2.1", Port: 5432}, "192.0.2.1:5432"},
		"ipv6 destination":        {Decision{Destination: "2001:db8::1", Port: 443}, "[2001:db8::1]:443"},
		"host wins":               {Decision{Host: "a.test", Destination: "192.0.2.1:80", Port: 80}, "a.test:80"},
		"nothing known, port set": {Decision{Port: 80}, ":80"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := destinationKey(&tc.in); got != tc.want {
				t.Errorf("destinationKey = %q, want %q", got, tc.want)
			}
		})
	}
}
