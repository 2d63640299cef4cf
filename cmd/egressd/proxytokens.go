package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
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
