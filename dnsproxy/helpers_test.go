package dnsproxy

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/egressd/egressd/serviceentry"
)

// loadAllowlist compiles a ServiceEntry file; any error-level problem fails
// the test, so fixtures stay valid.
func loadAllowlist(t testing.TB, path string) *serviceentry.Allowlist {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return compileYAML(t, path, string(data))
}

func compileYAML(t testing.TB, name, y string) *serviceentry.Allowlist {
	t.Helper()
	a := serviceentry.CompileYAML(name, []byte(y))
	for _, p := range a.Errors() {
		t.Fatalf("fixture %s: %s", name, p.Error())
	}
	return a
}

// decisions collects what OnDecision receives.
type decisions struct {
	mu   sync.Mutex
	list []Decision
}

func (d *decisions) add(x Decision) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.list = append(d.list, x)
}

func (d *decisions) all() []Decision {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Decision(nil), d.list...)
}

func (d *decisions) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.list = nil
}

// newTestServer builds a Server from c (with a test logger and a decision
// collector) and loads the fixture allowlist.
func newTestServer(t testing.TB, c Config) (*Server, *decisions) {
	t.Helper()
	d := &decisions{}
	if c.Log == nil {
		if tt, ok := t.(*testing.T); ok {
			c.Log = zaptest.NewLogger(tt, zaptest.Level(zap.WarnLevel))
		}
	}
	c.OnDecision = d.add
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	s.SetAllowlist(loadAllowlist(t, "testdata/allowlist.yaml"))
	return s, d
}

// recorder is an in-process dns.ResponseWriter. Like the real one it packs
// every message, so a reply that cannot be sent fails WriteMsg.
type recorder struct {
	local, remote net.Addr
	msgs          []*dns.Msg
}

func newRecorder(network string) *recorder {
	if network == "tcp" {
		return &recorder{
			local:  &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 15053},
			remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000},
		}
	}
	return &recorder{
		local:  &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 15053},
		remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000},
	}
}

func (w *recorder) LocalAddr() net.Addr  { return w.local }
func (w *recorder) RemoteAddr() net.Addr { return w.remote }
func (w *recorder) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	out := new(dns.Msg)
	if err := out.Unpack(b); err != nil {
		return err
	}
	w.msgs = append(w.msgs, out)
	return nil
}
func (w *recorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	w.msgs = append(w.msgs, m)
	return len(b), nil
}
func (w *recorder) Close() error        { return nil }
func (w *recorder) TsigStatus() error   { return nil }
func (w *recorder) TsigTimersOnly(bool) {}
func (w *recorder) Hijack()             {}

// queryOpt shapes a test query.
type queryOpt func(m *dns.Msg, network *string)

func withEDNS(size uint16, do bool) queryOpt {
	return func(m *dns.Msg, _ *string) { m.SetEdns0(size, do) }
}

func overTCP() queryOpt { return func(_ *dns.Msg, n *string) { *n = "tcp" } }

// ask sends one query to s's handler in-process and returns its one reply.
func ask(t testing.TB, s *Server, name string, qtype uint16, opts ...queryOpt) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	network := "udp"
	for _, o := range opts {
		o(m, &network)
	}
	return askMsg(t, s, m, network)
}

func askMsg(t testing.TB, s *Server, m *dns.Msg, network string) *dns.Msg {
	t.Helper()
	w := newRecorder(network)
	s.ServeDNS(w, m)
	if len(w.msgs) != 1 {
		t.Fatalf("%v: got %d replies, want 1", m.Question, len(w.msgs))
	}
	r := w.msgs[0]
	if r.Id != m.Id {
		t.Fatalf("reply id %d, want %d", r.Id, m.Id)
	}
	return r
}

// answers renders the answer section as "TYPE value" strings.
func answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		out = append(out, rrValue(rr))
	}
	return out
}

func rrValue(rr dns.RR) string {
	switch v := rr.(type) {
	case *dns.A:
		return "A " + v.A.String()
	case *dns.AAAA:
		return "AAAA " + v.AAAA.String()
	case *dns.CNAME:
		return "CNAME " + v.Target
	case *dns.TXT:
		return "TXT " + strings.Join(v.Txt, "")
	}
	return dns.TypeToString[rr.Header().Rrtype]
}

// edeOf returns the reply's Extended DNS Error, if any.
func edeOf(m *dns.Msg) *dns.EDNS0_EDE {
	opt := m.IsEdns0()
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			return e
		}
	}
	return nil
}

// fakeUpstream is a scripted DNS server on 127.0.0.1 (UDP and TCP on one
// port) that records what it is asked.
type fakeUpstream struct {
	addr   string
	handle func(network string, r *dns.Msg) *dns.Msg // nil: no reply

	mu      sync.Mutex
	queries []fakeQuery
}

type fakeQuery struct {
	network string
	name    string
	qtype   uint16
	edns    bool
	udpSize uint16
	do      bool
}

func (f *fakeUpstream) seen() []fakeQuery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeQuery(nil), f.queries...)
}

func (f *fakeUpstream) count() int { return len(f.seen()) }

func startFake(t testing.TB, handle func(network string, r *dns.Msg) *dns.Msg) *fakeUpstream {
	t.Helper()
	pc, ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUpstream{addr: pc.LocalAddr().String(), handle: handle}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		fq := fakeQuery{network: w.LocalAddr().Network()}
		if len(r.Question) == 1 {
			fq.name, fq.qtype = r.Question[0].Name, r.Question[0].Qtype
		}
		if o := r.IsEdns0(); o != nil {
			fq.edns, fq.udpSize, fq.do = true, o.UDPSize(), o.Do()
		}
		f.mu.Lock()
		f.queries = append(f.queries, fq)
		f.mu.Unlock()
		if m := f.handle(fq.network, r); m != nil {
			_ = w.WriteMsg(m)
		}
	})
	var up sync.WaitGroup
	up.Add(2)
	udp := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: up.Done}
	tcp := &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: up.Done}
	go func() { _ = udp.ActivateAndServe() }()
	go func() { _ = tcp.ActivateAndServe() }()
	up.Wait()
	t.Cleanup(func() {
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
	})
	return f
}

// testZone is the fake upstream's data: owner name -> records.
var testZone = map[string][]string{
	"www.example.test.":           {"www.example.test. 300 IN A 192.0.2.10", "www.example.test. 300 IN AAAA 2001:db8::10"},
	"a.svc.example.test.":         {"a.svc.example.test. 300 IN A 192.0.2.20"},
	"rebind.example.test.":        {"rebind.example.test. 300 IN A 127.0.0.1"},
	"private.example.test.":       {"private.example.test. 300 IN A 10.0.0.5"},
	"metadata.example.test.":      {"metadata.example.test. 300 IN A 169.254.169.254"},
	"mixed.example.test.":         {"mixed.example.test. 300 IN A 10.0.0.5", "mixed.example.test. 300 IN A 192.0.2.40"},
	"listed.example.test.":        {"listed.example.test. 300 IN A 10.0.0.6"},
	"ranged.example.test.":        {"ranged.example.test. 300 IN A 10.20.1.1"},
	"alias.example.test.":         {"alias.example.test. 300 IN CNAME cdn.unlisted.test.", "cdn.unlisted.test. 300 IN A 192.0.2.30"},
	"mail.example.test.":          {"mail.example.test. 300 IN A 192.0.2.25"},
	"static.example.test.":        {"static.example.test. 300 IN TXT \"static txt\""},
	"evil.example.net.":           {"evil.example.net. 300 IN A 192.0.2.66"},
	"kube-dns.svc.cluster.local.": {"kube-dns.svc.cluster.local. 30 IN A 10.96.0.10"},
	// 6to4 of 10.0.0.1, 127.0.0.1 and 169.254.169.254, and of public 8.8.8.8.
	"sixtofour.example.test.": {"sixtofour.example.test. 300 IN AAAA 2002:a00:1::1", "sixtofour.example.test. 300 IN AAAA 2002:7f00:1::1",
		"sixtofour.example.test. 300 IN AAAA 2002:a9fe:a9fe::1", "sixtofour.example.test. 300 IN AAAA 2002:808:808::1"},
	// Teredo with a public server and the client 10.0.0.1 (inverted).
	"teredo.example.test.":       {"teredo.example.test. 300 IN AAAA 2001:0:4136:e378:8000:face:f5ff:fffe"},
	"backend.example.test.":      {"backend.example.test. 300 IN A 192.0.2.50"},
	"loop-backend.example.test.": {"loop-backend.example.test. 300 IN A 127.0.0.1"},
	"gateway.example.test.":      {"gateway.example.test. 300 IN A 192.0.2.77"},
}

// zoneHandler answers from testZone: the records of the asked type (and
// CNAMEs), NODATA or NXDOMAIN with an SOA otherwise. www.example.test MX
// comes with glue in the additional section.
func zoneHandler(_ string, r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	q := r.Question[0]
	name := dns.CanonicalName(q.Name)
	rrs, ok := testZone[name]
	if q.Qtype == dns.TypeMX && name == "www.example.test." {
		m.Answer = append(m.Answer, mustRR("www.example.test. 300 IN MX 10 mail.example.test."))
		m.Extra = append(m.Extra, mustRR("mail.example.test. 300 IN A 192.0.2.25"))
	}
	for _, s := range rrs {
		rr := mustRR(s)
		if rr.Header().Rrtype == q.Qtype || rr.Header().Rrtype == dns.TypeCNAME || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, rr)
		}
	}
	if !ok {
		m.Rcode = dns.RcodeNameError
	}
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{mustRR("example.test. 3600 IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 120")}
	}
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(1232, o.Do())
	}
	return m
}

func mustRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}

// deadAddr returns a loopback UDP address where nothing answers: the socket
// stays bound (so no ICMP error comes back) but is never read.
func deadAddr(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc.LocalAddr().String()
}

// startServer runs s.Start on 127.0.0.1:0 until the test ends and waits
// until it is ready.
func startServer(t testing.TB, s *Server) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Start did not return after cancel")
		}
	})
	return s.Addr()
}

var (
	gw4 = netip.MustParseAddr("198.51.100.1")
	gw6 = netip.MustParseAddr("2001:db8:ffff::1")
)
