package decision

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// get fetches path from srv, returning status, content type and body.
func get(t *testing.T, srv *httptest.Server, path string) (int, string, []byte) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

func TestHandlerJSON(t *testing.T) {
	srv := httptest.NewServer(NewHandler(queryFixture(), nil))
	defer srv.Close()

	tests := map[string]struct {
		path       string
		wantStatus int
		check      func(t *testing.T, body []byte)
	}{
		"decisions filtered": {
			"/api/v1/decisions?verdict=deny&layer=http", 200,
			func(t *testing.T, body []byte) {
				var r struct {
					Decisions []map[string]any `json:"decisions"`
					Count     int              `json:"count"`
				}
				mustUnmarshal(t, body, &r)
				if r.Count != 2 || len(r.Decisions) != 2 {
					t.Fatalf("count %d, %d decisions; want 2", r.Count, len(r.Decisions))
				}
				if r.Decisions[0]["id"] != 5.0 || r.Decisions[1]["host"] != "Evil.Test." || r.Decisions[1]["source"] != "10.0.0.1:5001" {
					t.Errorf("decisions %v", r.Decisions)
				}
			},
		},
		"decisions empty is an empty list": {
			"/api/v1/decisions?host=none.test", 200,
			func(t *testing.T, body []byte) {
				if !strings.Contains(string(body), `"decisions":[]`) {
					t.Errorf("body %s, want an empty list", body)
				}
			},
		},
		"bad parameter": {
			"/api/v1/decisions?verdict=nope", 400,
			func(t *testing.T, body []byte) {
				if !strings.Contains(string(body), `verdict: unknown value "nope"`) {
					t.Errorf("body %q does not name the parameter and value", body)
				}
			},
		},
		"aggregates": {
			"/api/v1/aggregates?verdict=deny&top=1", 200,
			func(t *testing.T, body []byte) {
				var a Aggregates
				mustUnmarshal(t, body, &a)
				if a.Total != 3 || len(a.TopDestinations) != 1 || a.ByVerdict[vocab.VerdictDeny] != 3 {
					t.Errorf("aggregates %+v", a)
				}
				for _, key := range []string{`"by_verdict"`, `"top_destinations"`, `"per_minute"`, `"audit_deny"`, `"last_seen"`} {
					if !strings.Contains(string(body), key) {
						t.Errorf("body lacks %s", key)
					}
				}
			},
		},
		"aggregates bad top": {"/api/v1/aggregates?top=x", 400, nil},
		"chains": {
			"/api/v1/chains", 200,
			func(t *testing.T, body []byte) {
				var r struct {
					Chains []ChainView `json:"chains"`
				}
				mustUnmarshal(t, body, &r)
				if len(r.Chains) != 1 || r.Chains[0].ID != "chain-9" || len(r.Chains[0].Hops) != 2 {
					t.Errorf("chains %+v", r.Chains)
				}
				if !strings.Contains(string(body), `"decision_ids":[6]`) {
					t.Errorf("body %s lacks decision_ids", body)
				}
			},
		},
		"stream without a stream": {"/api/v1/decisions/stream", 503, nil},
		"unknown path":            {"/api/v1/nothing", 404, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status, ctype, body := get(t, srv, tc.path)
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", status, tc.wantStatus, body)
			}
			if status == 200 && ctype != "application/json" {
				t.Errorf("Content-Type %q", ctype)
			}
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}

	resp, err := srv.Client().Post(srv.URL+"/api/v1/decisions", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", resp.StatusCode)
	}
}

func mustUnmarshal(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
}

// sseEvent is one server-sent event, or a comment.
type sseEvent struct {
	id, event, data, comment string
}

// readEvents parses server-sent events from r onto a channel, closed at
// the end of the body.
func readEvents(r io.Reader) <-chan sseEvent {
	ch := make(chan sseEvent, 1000)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				ch <- e
				e = sseEvent{}
			case strings.HasPrefix(line, ": "):
				e.comment = line[2:]
			case strings.HasPrefix(line, "id: "):
				e.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				e.data = line[6:]
			}
		}
	}()
	return ch
}

// next returns the next event that is not a comment.
func next(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("event stream ended")
			}
			if e.comment == "" {
				return e
			}
		case <-timeout:
			t.Fatal("no event within 10 s")
		}
	}
}

// openStream starts a GET of path on srv, returning its events.
func openStream(t *testing.T, ctx context.Context, srv *httptest.Server, path string) <-chan sseEvent {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return readEvents(resp.Body)
}

func TestHandlerStream(t *testing.T) {
	store := NewStore(StoreConfig{})
	stream := NewStream(StreamConfig{})
	stream.Add("store", 1000, store)
	cancelRun, runDone := runStream(t, stream)
	srv := httptest.NewServer(newHandler(store, stream, 20*time.Millisecond, 1000))
	defer srv.Close()

	// Stored before the client connects: the backlog.
	for _, h := range []string{"old1.test", "old2.test", "old3.test"} {
		stream.Publish(dec(0, vocab.VerdictDeny, h))
	}
	stream.Publish(dec(0, vocab.VerdictAllow, "old-allowed.test"))
	syncStream(t, stream)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := openStream(t, ctx, srv, "/api/v1/decisions/stream?verdict=deny&backlog=2")

	// The newest two stored matches, oldest first.
	for _, want := range []string{"old2.test", "old3.test"} {
		e := next(t, events)
		var d Decision
		mustUnmarshal(t, []byte(e.data), &d)
		if e.event != "decision" || d.Host != want || e.id != fmt.Sprint(d.ID) {
			t.Fatalf("backlog event %+v, want decision for %s", e, want)
		}
	}

	// Live decisions, filtered by the query, while they are published.
	go func() {
		for i := range 5 {
			stream.Publish(dec(0, vocab.VerdictAllow, "skip.test"))
			stream.Publish(dec(0, vocab.VerdictDeny, fmt.Sprintf("live%d.test", i)))
		}
	}()
	for i := range 5 {
		e := next(t, events)
		var d Decision
		mustUnmarshal(t, []byte(e.data), &d)
		if want := fmt.Sprintf("live%d.test", i); d.Host != want || d.Verdict != vocab.VerdictDeny {
			t.Fatalf("live event %d: %s %s, want deny %s", i, d.Verdict, d.Host, want)
		}
	}

	// Keepalive comments arrive when nothing else does.
	deadline := time.After(10 * time.Second)
	for keepalive := false; !keepalive; {
		select {
		case e := <-events:
			keepalive = e.comment == "keepalive"
		case <-deadline:
			t.Fatal("no keepalive")
		}
	}

	// The stream ending ends the response.
	cancelRun()
	<-runDone
	timeout := time.After(10 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-events:
		case <-timeout:
			t.Fatal("response did not end with the stream")
		}
	}
}

func TestHandlerStreamDropsAndDisconnect(t *testing.T) {
	stream := NewStream(StreamConfig{})
	runStream(t, stream)
	srv := httptest.NewServer(newHandler(NewStore(StoreConfig{}), stream, 20*time.Millisecond, 1))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	events := openStream(t, ctx, srv, "/api/v1/decisions/stream")
	waitSubs(t, stream, 1)

	// Bursts much faster than the client: with a subscription of one,
	// decisions are dropped. Every decision is either sent or counted in
	// a dropped event (the keepalive tick announces the last count), each
	// event counting the drops since the one before; bursts go on until
	// there have been two.
	received, dropped, published, droppedEvents := 0, 0, 0, 0
	deadline := time.After(10 * time.Second)
	for received+dropped < published || droppedEvents < 2 {
		if droppedEvents < 2 && received+dropped == published {
			for range 500 {
				stream.Publish(dec(0, vocab.VerdictDeny, "burst.test"))
				published++
			}
		}
		select {
		case e := <-events:
			switch e.event {
			case "decision":
				received++
			case "dropped":
				var r struct{ Dropped int }
				mustUnmarshal(t, []byte(e.data), &r)
				if r.Dropped <= 0 {
					t.Fatalf("dropped event with %d", r.Dropped)
				}
				dropped += r.Dropped
				droppedEvents++
			}
		case <-deadline:
			t.Fatalf("after 10 s: %d published, %d received, %d reported dropped", published, received, dropped)
		}
	}
	if received+dropped != published {
		t.Errorf("%d received + %d dropped != %d published", received, dropped, published)
	}
	if got := stream.Dropped(DropSubscriber); got != uint64(dropped) {
		t.Errorf("stream counted %d subscriber drops, the client was told %d", got, dropped)
	}

	// The client going away ends the subscription.
	cancel()
	waitSubs(t, stream, 0)
}

// waitSubs waits until stream has n subscriptions.
func waitSubs(t *testing.T, s *Stream, n int) {
	t.Helper()
	for start := time.Now(); len(*s.subs.Load()) != n; time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%d subscriptions, want %d", len(*s.subs.Load()), n)
		}
	}
}

func TestHandlerStreamBacklogOverlap(t *testing.T) {
	// What the backlog sent is not sent again live: the store already
	// holds decision 5 when decisions 1..6 come through the subscription.
	store := NewStore(StoreConfig{})
	store.Consume(dec(5, vocab.VerdictDeny, "backlog.test"))
	stream := NewStream(StreamConfig{})
	runStream(t, stream)
	srv := httptest.NewServer(newHandler(store, stream, time.Hour, 100))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := openStream(t, ctx, srv, "/api/v1/decisions/stream?backlog=10")
	if e := next(t, events); e.id != "5" {
		t.Fatalf("first event has id %q, want the backlog's 5", e.id)
	}
	waitSubs(t, stream, 1)
	for range 6 {
		stream.Publish(dec(0, vocab.VerdictDeny, "live.test"))
	}
	if e := next(t, events); e.id != "6" {
		t.Errorf("first live event has id %q, want 6 (1..5 are covered by the backlog)", e.id)
	}
}
