package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/egressd/egressd/egress/xds"
)

// readProxyTokens reads --proxy-tokens: one client per line, "<identity>
// <secret>", blank lines and "#" comments skipped. An identity may appear
// once; a secret must not contain spaces, and neither may be empty.
func readProxyTokens(path string) ([]xds.ProxyIdentity, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--proxy-tokens: %w", err)
	}
	return parseProxyTokens(path, data)
}

func parseProxyTokens(path string, data []byte) ([]xds.ProxyIdentity, error) {
	var out []xds.ProxyIdentity
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("--proxy-tokens %s:%d: want \"<identity> <secret>\", got %d fields", path, n, len(fields))
		}
		id, secret := fields[0], fields[1]
		if strings.Contains(id, ":") {
			return nil, fmt.Errorf("--proxy-tokens %s:%d: identity %q: no \":\" (it is the Basic user name)", path, n, id)
		}
		if seen[id] {
			return nil, fmt.Errorf("--proxy-tokens %s:%d: identity %q listed twice", path, n, id)
		}
		seen[id] = true
		out = append(out, xds.ProxyIdentity{Identity: id, Secret: secret})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--proxy-tokens %s: %w", path, err)
	}
	return out, nil
}

// upstreamProxy is --upstream-proxy and its credentials: the address
// resolved once, now (the gateway resolver hands out no internal address,
// which a corporate proxy usually has).
func upstreamProxy(cfg *Config) (*xds.UpstreamProxy, error) {
	if cfg.UpstreamProxy == "" {
		if cfg.UpstreamProxyCredentials != "" {
			return nil, fmt.Errorf("--upstream-proxy-credentials without --upstream-proxy")
		}
		return nil, nil
	}
	host, port, err := net.SplitHostPort(cfg.UpstreamProxy)
	if err != nil {
		return nil, fmt.Errorf("--upstream-proxy %q: %w", cfg.UpstreamProxy, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return nil, fmt.Errorf("--upstream-proxy %q: port %q is not a port", cfg.UpstreamProxy, port)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		addrs, lerr := net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
		if lerr != nil || len(addrs) == 0 {
			return nil, fmt.Errorf("--upstream-proxy %q: %v", cfg.UpstreamProxy, lerr)
		}
		ip = addrs[0]
	}
	up := &xds.UpstreamProxy{Address: netip.AddrPortFrom(ip.Unmap(), uint16(n))}
	if cfg.UpstreamProxyCredentials != "" {
		b, err := os.ReadFile(cfg.UpstreamProxyCredentials)
		if err != nil {
			return nil, fmt.Errorf("--upstream-proxy-credentials: %w", err)
		}
		cred := strings.TrimSpace(string(b))
		if !strings.Contains(cred, ":") {
			return nil, fmt.Errorf("--upstream-proxy-credentials %s: want \"user:password\"", cfg.UpstreamProxyCredentials)
		}
		up.Authorization = "Basic " + base64.StdEncoding.EncodeToString([]byte(cred))
	}
	return up, nil
}
