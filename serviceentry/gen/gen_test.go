package gen

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/egressd/egressd/serviceentry"
)

func TestServiceEntriesParseWithoutProblems(t *testing.T) {
	for _, n := range []int{100, 1000, 10000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := ServiceEntries(n, 1)
			cfg, problems := serviceentry.ParseConfig("gen.yaml", data)
			a := serviceentry.CompileConfig(cfg, problems)
			for i, p := range a.Problems() {
				if i == 5 {
					t.Fatalf("... %d problems in all", len(a.Problems()))
				}
				t.Errorf("%s: %v", p.Severity, p)
			}
			if len(cfg.Entries) != n {
				t.Fatalf("%d ServiceEntries; want %d", len(cfg.Entries), n)
			}
			kinds := map[Kind]int{}
			hosts := map[string]bool{}
			addrs := map[string]bool{}
			for i, e := range cfg.Entries {
				kinds[KindOf(i)]++
				for _, h := range e.Hosts {
					if hosts[h] {
						t.Errorf("host %q twice", h)
					}
					hosts[h] = true
				}
				for _, p := range e.Addresses {
					if !strings.HasPrefix(p.String(), "198.1") || addrs[p.String()] {
						t.Errorf("address %s outside 198.18.0.0/15 or twice", p)
					}
					addrs[p.String()] = true
				}
			}
			if got, want := len(cfg.Rules), kinds[KindMultiPort]; got != want {
				t.Errorf("%d DestinationRules; want %d", got, want)
			}
			if n >= 1000 {
				share := func(k Kind) float64 { return float64(kinds[k]) / float64(n) }
				t.Logf("TLS %.2f HTTP %.2f wildcard %.2f TCP %.2f multi-port %.2f; %d hosts, %d origination rules",
					share(KindTLS), share(KindHTTP), share(KindWildcard), share(KindTCP), share(KindMultiPort), len(hosts), len(a.Rules()))
			}
		})
	}
}

func TestServiceEntriesDeterministic(t *testing.T) {
	if !bytes.Equal(ServiceEntries(500, 7), ServiceEntries(500, 7)) {
		t.Error("the same seed gave different YAML")
	}
	if bytes.Equal(ServiceEntries(500, 7), ServiceEntries(500, 8)) {
		t.Error("different seeds gave the same YAML")
	}
}
