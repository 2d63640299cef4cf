package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/egressd/egressd/egress/xds"
)

func TestParseProxyTokens(t *testing.T) {
	got, err := parseProxyTokens("t", []byte("# CI runners\nci/runner-1 s3cret\n\n  batch  other-secret  \n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []xds.ProxyIdentity{{Identity: "ci/runner-1", Secret: "s3cret"}, {Identity: "batch", Secret: "other-secret"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for in, msg := range map[string]string{
		"a b c\n":       "t:1: want",
		"a:b secret\n":  `identity "a:b"`,
		"a x\nb y\na z": `t:3: identity "a" listed twice`,
		"lonely\n":      "got 1 fields",
	} {
		if _, err := parseProxyTokens("t", []byte(in)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want %q", in, err, msg)
		}
	}
}
