package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/decision"
	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// backlog is what the fake API stores, oldest first.
var backlog = []*decision.Decision{
	{ID: 1, Time: t0, Layer: "dns", Verdict: "deny", Reason: "not_in_registry",
		Source: netip.MustParseAddrPort("10.0.0.1:53000"), Host: "evil.example", Protocol: "DNS/A"},
	{ID: 2, Time: t0.Add(1500 * time.Millisecond), Layer: "http", Verdict: "allow", Reason: "allowed",
		Source: netip.MustParseAddrPort("10.0.0.2:40000"), Identity: "shop/checkout", Host: "api.example.com", Port: 80,
		ServiceEntry: "default/api", Status: 302, Location: "https://login.example.net/start"},
}

// newest returns the list response: newest first.
func listBody(ds []*decision.Decision) []byte {
	var rev []*decision.Decision
	for i := len(ds) - 1; i >= 0; i-- {
		rev = append(rev, ds[i])
	}
	b, _ := json.Marshal(map[string]any{"decisions": rev, "count": len(rev)})
	return b
}

func TestDecisionsTable(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write(listBody(backlog)) })
	got := runCLI(context.Background(), "--admin", srv.URL, "decisions",
		"--verdict", "deny,allow", "--layer", "dns,http", "--reason", "not_in_registry", "--source", "10.0.0.0/8",
		"--host", "*.example.com", "--since", "1h", "--limit", "5")
	if got.code != 0 {
		t.Fatalf("exit %d: %s", got.code, got.stderr)
	}
	want := "" +
		"TIME          LAYER  VERDICT  REASON           SOURCE         HOST:PORT           SERVICEENTRY/STATUS  DETAIL\n" +
		"12:00:00.000  dns    deny     not_in_registry  10.0.0.1       evil.example        -                    -\n" +
		"12:00:01.500  http   allow    allowed          shop/checkout  api.example.com:80  default/api 302      location https://login.example.net/start\n"
	if d := cmp.Diff(want, got.stdout); d != "" {
		t.Errorf("stdout (-want +got):\n%s", d)
	}
	wantQuery := map[string][]string{
		"verdict": {"deny,allow"}, "layer": {"dns,http"}, "reason": {"not_in_registry"}, "source": {"10.0.0.0/8"},
		"host": {"*.example.com"}, "since": {"1h"}, "limit": {"5"},
	}
	if d := cmp.Diff(wantQuery, map[string][]string(query(srv.request(t, 0)))); d != "" {
		t.Errorf("query (-want +got):\n%s", d)
	}
}

func TestDecisionsJSON(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write(listBody(backlog)) })
	got := runCLI(context.Background(), "--admin", srv.URL, "decisions", "-o", "json")
	if got.code != 0 {
		t.Fatalf("exit %d: %s", got.code, got.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(got.stdout, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), got.stdout)
	}
	for i, line := range lines {
		want, _ := json.Marshal(backlog[i])
		if line != string(want) {
			t.Errorf("line %d:\n got %s\nwant %s", i, line, want)
		}
	}
}

func TestDecisionsEmpty(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"decisions":[],"count":0}`)) })
	got := runCLI(context.Background(), "--admin", srv.URL, "decisions")
	if got.code != 0 || got.stdout != "" {
		t.Errorf("exit %d, stdout %q", got.code, got.stdout)
	}
}

func TestDetailTruncated(t *testing.T) {
	d := &decision.Decision{Detail: strings.Repeat("x", 100)}
	if got := truncate(detail(d), maxDetail); len([]rune(got)) != maxDetail || !strings.HasSuffix(got, "…") {
		t.Errorf("got %q", got)
	}
}

// sseStream writes the stream the follow tests expect: a keepalive, a
// decision, a dropped event, another decision, then the end.
func sseStream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	ev := func(d *decision.Decision) string {
		b, _ := json.Marshal(d)
		return fmt.Sprintf("id: %d\nevent: decision\ndata: %s\n\n", d.ID, b)
	}
	fmt.Fprint(w, ": keepalive\n\n")
	fmt.Fprint(w, ev(&decision.Decision{ID: 3, Time: t0.Add(2 * time.Second), Layer: "tls", Verdict: "deny",
		Reason: "not_in_registry", Source: netip.MustParseAddrPort("10.0.0.3:1"), Host: "new.example.org", Port: 443}))
	fmt.Fprint(w, "event: dropped\ndata: {\"dropped\":7}\n\n")
	fmt.Fprint(w, ev(&decision.Decision{ID: 9, Time: t0.Add(3 * time.Second), Layer: "tcp", Verdict: "audit-deny",
		Reason: "unidentified_tcp", Source: netip.MustParseAddrPort("10.0.0.4:1"), Destination: "203.0.113.9:22", Port: 22}))
}

func TestDecisionsFollow(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/decisions":
			w.Write(listBody(backlog))
		case "/api/v1/decisions/stream":
			sseStream(w)
		default:
			http.NotFound(w, r)
		}
	})
	for _, format := range []string{"table", "json"} {
		t.Run(format, func(t *testing.T) {
			got := runCLI(context.Background(), "--admin", srv.URL, "decisions", "--follow", "--verdict", "deny,audit-deny", "-o", format)
			if got.code != 0 {
				t.Fatalf("exit %d: %s", got.code, got.stderr)
			}
			if want := "egressctl: warning: egressd dropped 7 decisions this stream was too slow for\n"; got.stderr != want {
				t.Errorf("stderr %q, want %q", got.stderr, want)
			}
			var ids []string
			for _, line := range strings.Split(strings.TrimSuffix(got.stdout, "\n"), "\n") {
				if format == "json" {
					var d decision.Decision
					if err := json.Unmarshal([]byte(line), &d); err != nil {
						t.Fatalf("%q: %v", line, err)
					}
					ids = append(ids, fmt.Sprint(d.ID))
				} else {
					ids = append(ids, strings.Fields(line)[0])
				}
			}
			want := []string{"1", "2", "3", "9"}
			if format == "table" {
				want = []string{"TIME", "12:00:00.000", "12:00:01.500", "12:00:02.000", "12:00:03.000"}
			}
			if d := cmp.Diff(want, ids); d != "" {
				t.Errorf("rows (-want +got):\n%s\n%s", d, got.stdout)
			}
			if format == "table" {
				// Streamed rows keep the backlog's columns, widening
				// them only for a longer cell.
				want := "" +
					"TIME          LAYER  VERDICT  REASON           SOURCE         HOST:PORT           SERVICEENTRY/STATUS  DETAIL\n" +
					"12:00:00.000  dns    deny     not_in_registry  10.0.0.1       evil.example        -                    -\n" +
					"12:00:01.500  http   allow    allowed          shop/checkout  api.example.com:80  default/api 302      location https://login.example.net/start\n" +
					"12:00:02.000  tls    deny     not_in_registry  10.0.0.3       new.example.org:443  -                    -\n" +
					"12:00:03.000  tcp    audit-deny  unidentified_tcp  10.0.0.4       203.0.113.9:22       -                    -\n"
				if d := cmp.Diff(want, got.stdout); d != "" {
					t.Errorf("streamed rows not aligned (-want +got):\n%s", d)
				}
			}
		})
	}
	stream := srv.request(t, 1)
	if stream.URL.Path != "/api/v1/decisions/stream" || stream.Header.Get("Accept") != "text/event-stream" {
		t.Fatalf("second request: %s %v", stream.URL.Path, stream.Header)
	}
	wantQuery := map[string][]string{"verdict": {"deny,audit-deny"}, "after_id": {"2"}, "since": {"15m"}, "backlog": {"100"}}
	if d := cmp.Diff(wantQuery, map[string][]string(query(stream))); d != "" {
		t.Errorf("stream query (-want +got):\n%s", d)
	}
}

// TestDecisionsFollowInterrupted: cancelling the context (SIGINT or
// SIGTERM in main) ends an open stream cleanly.
func TestDecisionsFollowInterrupted(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/decisions" {
			w.Write([]byte(`{"decisions":[],"count":0}`))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		b, _ := json.Marshal(&decision.Decision{ID: 5, Time: t0, Layer: "dns", Verdict: "deny", Reason: "not_in_registry", Host: "a.example"})
		fmt.Fprintf(w, "id: 5\nevent: decision\ndata: %s\n\n", b)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &notifyWriter{written: make(chan struct{})}
	var stderr strings.Builder
	go func() {
		<-stdout.written // the streamed decision is printed: interrupt
		cancel()
	}()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--admin", srv.URL, "decisions", "--follow", "-o", "json"}, stdout, &stderr)
	}()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(stdout.String(), `"id":5`) || stderr.String() != "" {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
		}
		if _, ok := query(srv.request(t, 1))["after_id"]; ok {
			t.Errorf("after_id sent with nothing printed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("egressctl did not stop")
	}
}

// notifyWriter closes written at the first write.
type notifyWriter struct {
	strings.Builder
	written chan struct{}
	once    sync.Once
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	n, err := w.Builder.Write(p)
	w.once.Do(func() { close(w.written) })
	return n, err
}

func TestDecisionsFollowStreamError(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/decisions" {
			w.Write([]byte(`{"decisions":[],"count":0}`))
			return
		}
		http.Error(w, "no decision stream", http.StatusServiceUnavailable)
	})
	got := runCLI(context.Background(), "--admin", srv.URL, "decisions", "--follow")
	if got.code != 1 || !strings.Contains(got.stderr, "/api/v1/decisions/stream?backlog=100&since=15m: 503 Service Unavailable: no decision stream") {
		t.Errorf("exit %d, stderr %q", got.code, got.stderr)
	}
}

func TestLayerNamesTheProxy(t *testing.T) {
	if got := layer(&decision.Decision{Layer: "http", Via: "proxy"}); got != "http via proxy" {
		t.Errorf("layer = %q", got)
	}
	if got := layer(&decision.Decision{Layer: "tls"}); got != "tls" {
		t.Errorf("layer = %q", got)
	}
}
