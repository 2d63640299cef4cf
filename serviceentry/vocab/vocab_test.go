package vocab

import (
	"slices"
	"testing"
)

func TestValuesParse(t *testing.T) {
	for _, l := range Layers() {
		if got, ok := ParseLayer(string(l)); !ok || got != l || !l.Valid() {
			t.Errorf("layer %q", l)
		}
	}
	for _, v := range Verdicts() {
		if got, ok := ParseVerdict(string(v)); !ok || got != v || !v.Valid() {
			t.Errorf("verdict %q", v)
		}
	}
	seen := map[Reason]bool{}
	for _, r := range Reasons() {
		if got, ok := ParseReason(string(r)); !ok || got != r || !r.Valid() || seen[r] {
			t.Errorf("reason %q", r)
		}
		seen[r] = true
	}
	for _, bad := range []string{"", "DENY", "deny ", "smtp", "because"} {
		if _, ok := ParseLayer(bad); ok {
			t.Errorf("layer %q parsed", bad)
		}
		if _, ok := ParseVerdict(bad); ok {
			t.Errorf("verdict %q parsed", bad)
		}
		if _, ok := ParseReason(bad); ok {
			t.Errorf("reason %q parsed", bad)
		}
		if Layer(bad).Valid() || Verdict(bad).Valid() || Reason(bad).Valid() {
			t.Errorf("%q is valid", bad)
		}
	}
	if !VerdictDeny.Denied() || !VerdictAuditDeny.Denied() || VerdictAllow.Denied() {
		t.Error("Denied")
	}
	if got := Strings(Verdicts()); !slices.Equal(got, []string{"allow", "deny", "audit-deny"}) {
		t.Errorf("Strings(Verdicts()) = %q", got)
	}
}

func TestClusterNames(t *testing.T) {
	for name, want := range map[string]Cluster{
		"outbound|443||api.example.com":    {Port: 443, Host: "api.example.com"},
		"outbound|443|tls|api.example.com": {Port: 443, Passthrough: true, Host: "api.example.com"},
		"outbound|80||*.example.com":       {Port: 80, Host: "*.example.com"},
		"outbound|5432|addr|198.18.0.7":    {Port: 5432, Address: true, Host: "198.18.0.7"},
		"outbound|5432|addr|2001:db8::7":   {Port: 5432, Address: true, Host: "2001:db8::7"},
	} {
		got, ok := ParseCluster(name)
		if !ok || got != want || got.String() != name {
			t.Errorf("%s: %+v %v (%s)", name, got, ok, got.String())
		}
	}
	if ClusterName("a.test", 80) != "outbound|80||a.test" || PassthroughClusterName("a.test", 443) != "outbound|443|tls|a.test" ||
		AddressClusterName("198.18.0.7", 5432) != "outbound|5432|addr|198.18.0.7" {
		t.Error("name functions")
	}
	for _, bad := range []string{"", "outbound|80|", "outbound|80||", "inbound|80||a", "outbound|x||a", "outbound|0||a", "outbound|080||a", "outbound|80|v1|a", "outbound|70000||a"} {
		if c, ok := ParseCluster(bad); ok {
			t.Errorf("%q parsed as %+v", bad, c)
		}
	}
}

func TestChainNames(t *testing.T) {
	for name, want := range map[string]Chain{
		"tls|443|api.example.com": {Kind: ChainTLS, Port: 443, Target: "api.example.com"},
		"tls|443|by_sni":          {Kind: ChainTLS, Port: 443, Target: TargetBySNI},
		"tls|8443|unlisted":       {Kind: ChainTLS, Port: 8443, Target: TargetUnlisted},
		"tcp|5432|data/postgres":  {Kind: ChainTCP, Port: 5432, Target: "data/postgres"},
		"tcp|5432|unlisted":       {Kind: ChainTCP, Port: 5432, Target: TargetUnlisted},
		"http|80":                 {Kind: ChainHTTP, Port: 80},
		"mesh|http|80":            {Kind: ChainMeshHTTP, Port: 80},
		"mesh|tls|443|a.test":     {Kind: ChainMeshTLS, Port: 443, Target: "a.test"},
		"mesh|unlisted":           {Kind: ChainMeshUnlisted},
	} {
		got, ok := ParseChain(name)
		if !ok || got != want || got.String() != name {
			t.Errorf("%s: %+v %v (%s)", name, got, ok, got.String())
		}
	}
	if e := (Chain{Kind: ChainTCP, Port: 5432, Target: "data/postgres"}).Entry(); e != "data/postgres" {
		t.Errorf("entry %q", e)
	}
	for _, c := range []Chain{{Kind: ChainTCP, Port: 1, Target: TargetUnlisted}, {Kind: ChainTLS, Port: 1, Target: "a.test"}} {
		if c.Entry() != "" {
			t.Errorf("%s has an entry", c)
		}
	}
	for _, bad := range []string{"", "tls", "tls|443", "tls|443|", "tcp|x|a", "http|80|x", "mesh|http|80|x", "udp|53|x", "mesh|unlisted|1"} {
		if c, ok := ParseChain(bad); ok {
			t.Errorf("%q parsed as %+v", bad, c)
		}
	}
}

// FuzzNames: whatever parses prints back to itself.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"outbound|443|tls|a.test", "tcp|5432|ns/n", "mesh|unlisted", "http|80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if c, ok := ParseCluster(s); ok && c.String() != s {
			t.Fatalf("cluster %q -> %+v -> %q", s, c, c.String())
		}
		if c, ok := ParseChain(s); ok && c.String() != s {
			t.Fatalf("chain %q -> %+v -> %q", s, c, c.String())
		}
	})
}
