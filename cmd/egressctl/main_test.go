package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	displayLocation = time.UTC
	getenv = func(string) string { return "" }
	os.Exit(m.Run())
}

// result is one run of egressctl.
type result struct {
	code           int
	stdout, stderr string
}

func runCLI(ctx context.Context, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// apiServer is a fake admin API that records the requests it gets.
type apiServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
}

func newAPIServer(t *testing.T, h http.HandlerFunc) *apiServer {
	t.Helper()
	s := &apiServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Clone(context.Background()))
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// request returns the i-th request received.
func (s *apiServer) request(t *testing.T, i int) *http.Request {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.requests) {
		t.Fatalf("got %d requests, want at least %d", len(s.requests), i+1)
	}
	return s.requests[i]
}

func TestCommands(t *testing.T) {
	tests := map[string]struct {
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		"no args":            {nil, 2, "", "Usage:"},
		"help":               {[]string{"help"}, 0, "decisions   list recorded decisions", ""},
		"help lists flags":   {[]string{"--help"}, 0, "", "--wildcard-min"},
		"version":            {[]string{"version"}, 0, "egressctl dev\n", ""},
		"unknown command":    {[]string{"tail"}, 2, "", `unknown command "tail"`},
		"bad global flag":    {[]string{"--nope", "version"}, 2, "", "flag provided but not defined: -nope"},
		"bad flag":           {[]string{"decisions", "--nope"}, 2, "", "flag provided but not defined: -nope"},
		"subcommand help":    {[]string{"decisions", "-h"}, 0, "", "-follow"},
		"extra argument":     {[]string{"suggest", "now"}, 2, "", `unexpected argument "now"`},
		"bad admin":          {[]string{"--admin", "ftp://x", "decisions"}, 2, "", `--admin "ftp://x"`},
		"bad verdict":        {[]string{"decisions", "--verdict", "deny,denied"}, 2, "", `unknown value "denied"`},
		"bad layer":          {[]string{"decisions", "--layer", "udp"}, 2, "", `--layer: unknown value "udp"`},
		"bad since":          {[]string{"decisions", "--since", "yesterday"}, 2, "", `--since "yesterday"`},
		"bad limit":          {[]string{"decisions", "--limit", "0"}, 2, "", "--limit 0"},
		"bad output":         {[]string{"decisions", "-o", "yaml"}, 2, "", `-o "yaml": use table or json`},
		"bad suggest output": {[]string{"suggest", "-o", "table"}, 2, "", `-o "table": use yaml or json`},
		"bad suggest since":  {[]string{"suggest", "--since", "-1h"}, 2, "", `--since "-1h"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := runCLI(context.Background(), tc.args...)
			if got.code != tc.code || !strings.Contains(got.stdout, tc.stdout) || !strings.Contains(got.stderr, tc.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					got.code, got.stdout, got.stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

// TestAdminAndToken: --admin and --token (before or after the command)
// and their environment variables reach the request.
func TestAdminAndToken(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"decisions":[],"count":0}`))
	})
	host := strings.TrimPrefix(srv.URL, "http://")

	if got := runCLI(context.Background(), "--admin", srv.URL, "--token", "s3cret", "decisions"); got.code != 0 {
		t.Fatalf("exit %d: %s", got.code, got.stderr)
	}
	if a := srv.request(t, 0).Header.Get("Authorization"); a != "Bearer s3cret" {
		t.Errorf("Authorization %q", a)
	}
	if got := runCLI(context.Background(), "decisions", "--admin", host+"/"); got.code != 0 {
		t.Fatalf("host:port admin: exit %d: %s", got.code, got.stderr)
	}
	if a := srv.request(t, 1).Header.Get("Authorization"); a != "" {
		t.Errorf("Authorization %q without a token", a)
	}
	if p := srv.request(t, 1).URL.Path; p != "/api/v1/decisions" {
		t.Errorf("path %q", p)
	}

	getenv = func(k string) string {
		return map[string]string{envAdmin: srv.URL, envToken: "from-env"}[k]
	}
	t.Cleanup(func() { getenv = func(string) string { return "" } })
	if got := runCLI(context.Background(), "decisions"); got.code != 0 {
		t.Fatalf("env: exit %d: %s", got.code, got.stderr)
	}
	if a := srv.request(t, 2).Header.Get("Authorization"); a != "Bearer from-env" {
		t.Errorf("Authorization %q from the environment", a)
	}
}

func TestErrors(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "store exploded\nsecond line", http.StatusInternalServerError)
	})
	got := runCLI(context.Background(), "--admin", srv.URL, "decisions", "--verdict", "deny")
	want := "egressctl: GET " + srv.URL + "/api/v1/decisions?limit=100&since=15m&verdict=deny: 500 Internal Server Error: store exploded\n"
	if got.code != 1 || got.stderr != want {
		t.Errorf("exit %d, stderr %q; want 1, %q", got.code, got.stderr, want)
	}

	got = runCLI(context.Background(), "--admin", srv.URL, "suggest")
	if got.code != 1 || !strings.Contains(got.stderr, "/api/v1/suggestions?format=yaml&since=24h: 500 Internal Server Error: store exploded\n") {
		t.Errorf("suggest: exit %d, stderr %q", got.code, got.stderr)
	}

	// A closed port: connection refused, with the address and the flag.
	closed := httptest.NewServer(http.NotFoundHandler())
	addr := closed.Listener.Addr().String()
	closed.Close()
	for _, cmd := range []string{"decisions", "suggest"} {
		got = runCLI(context.Background(), "--admin", addr, cmd)
		if got.code != 1 || !strings.Contains(got.stderr, "nothing listens at "+addr+" (connection refused)") ||
			!strings.Contains(got.stderr, "--admin") {
			t.Errorf("%s, unreachable: exit %d, stderr %q", cmd, got.code, got.stderr)
		}
	}

	// Not the API: a body that is not JSON.
	html := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) })
	got = runCLI(context.Background(), "--admin", html.URL, "decisions")
	if got.code != 1 || !strings.Contains(got.stderr, "unexpected response") {
		t.Errorf("not JSON: exit %d, stderr %q", got.code, got.stderr)
	}
}

// query parses a request's query.
func query(r *http.Request) url.Values { return r.URL.Query() }
