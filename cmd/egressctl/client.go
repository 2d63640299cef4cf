package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// requestTimeout bounds one request that is not a stream.
const requestTimeout = 30 * time.Second

// maxBody is the largest response body read whole.
const maxBody = 64 << 20

// client talks to egressd's admin API.
type client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// newClient checks the admin address: a URL, or host:port for http.
func newClient(g *global) (*client, error) {
	raw := strings.TrimSpace(g.admin)
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, usagef("--admin %q: use egressd's admin address, e.g. %s or 127.0.0.1:15000", g.admin, defaultAdmin)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return &client{base: u, token: g.token, http: &http.Client{}}, nil
}

// url is the API URL of path with query q.
func (c *client) url(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	return u.String()
}

// getBody GETs path and returns the whole body of a 2xx response.
func (c *client) getBody(ctx context.Context, path string, q url.Values) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := c.get(ctx, path, q, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the response: %w", resp.Request.URL, err)
	}
	return body, nil
}

// get sends one GET and returns a 2xx response with its body open. Other
// statuses become "GET <url>: <status>: <first line of the body>".
func (c *client) get(ctx context.Context, path string, q url.Values, accept string) (*http.Response, error) {
	target := c.url(path, q)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", target, err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.explain(target, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		line, _ := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadString('\n')
		return nil, fmt.Errorf("GET %s: %s: %s", target, resp.Status, strings.TrimSpace(line))
	}
	return resp, nil
}

// explain turns a transport error into a message that says what to check.
func (c *client) explain(target string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("GET %s: nothing listens at %s (connection refused); is egressd running? Point --admin (or %s) at its admin address", target, c.base.Host, envAdmin)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Errorf("GET %s: cannot resolve %q (%v); check --admin (or %s)", target, c.base.Hostname(), dnsErr.Err, envAdmin)
	}
	return fmt.Errorf("GET %s: cannot reach egressd's admin API at %s: %w; check --admin (or %s)", target, c.base.Host, unwrapURL(err), envAdmin)
}

// unwrapURL drops the url.Error wrapper, which repeats the method and URL.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
