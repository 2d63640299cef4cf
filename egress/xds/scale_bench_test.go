package xds

// Scale benchmarks (issue #9): generated allowlists of 100 to 10,000
// ServiceEntries, compiled to a snapshot, published to a real Envoy.
// The Envoy benchmarks are one-shot measurements: they ignore b.N (run
// them with -benchtime 1x) and report their own metrics.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/miekg/dns"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/egressd/egressd/egress/envoy"
	"github.com/egressd/egressd/internal/testkit"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/gen"
)

var scaleSizes = []int{100, 1000, 10000}

// scaleOptions are the translation options of the scale benchmarks. The
// DNS resolver is answeringResolver: 10,000 DNS clusters must not query a
// real resolver, and they should resolve, as in production.
func scaleOptions(tb testing.TB) Options {
	// A loopback address of its own keeps the listeners off other sockets.
	listenIP := fmt.Sprintf("127.97.%d.%d", os.Getpid()%250+1, os.Getpid()/250%250+1)
	// egressd run's defaults: decisions by gRPC access log, no Envoy file
	// log, host clusters discovered on demand.
	return Options{ListenAddress: listenIP, PortOffset: 20000,
		ALSCluster: envoy.XDSClusterName, ODCDSCluster: envoy.XDSClusterName, SecretNames: testSecretNames, DNSResolvers: []string{answeringResolver(tb)}}
}

// answeringResolver serves DNS on a loopback UDP port until the benchmark
// ends: every A query is answered with 198.18.0.1 (a benchmarking address
// no traffic is sent to) and a TTL of 300 s, like a typical external
// record; any other query gets an empty answer.
func answeringResolver(tb testing.TB) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if len(q.Question) == 1 && q.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300},
				A:   net.IPv4(198, 18, 0, 1),
			})
		}
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: handler}
	go func() { _ = srv.ActivateAndServe() }()
	tb.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func compileGenerated(tb testing.TB, data []byte) *serviceentry.Allowlist {
	tb.Helper()
	cfg, problems := serviceentry.ParseConfig("gen.yaml", data)
	a := serviceentry.CompileConfig(cfg, problems)
	for _, p := range a.Problems() {
		if p.Severity == serviceentry.SeverityError {
			tb.Fatalf("generated allowlist has a problem: %v", p)
		}
	}
	return a
}

// BenchmarkCompile is the whole pure pipeline: YAML -> ParseConfig ->
// CompileConfig -> Translate -> Version -> Snapshot (with its Consistent
// check). Resources.Validate, which Server.Update also runs, is
// BenchmarkValidate.
func BenchmarkCompile(b *testing.B) {
	for _, n := range append(scaleSizes, 100000) {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			data := gen.ServiceEntries(n, 1)
			opts := scaleOptions(b)
			b.ReportAllocs()
			var keep *Resources
			for b.Loop() {
				cfg, problems := serviceentry.ParseConfig("gen.yaml", data)
				a := serviceentry.CompileConfig(cfg, problems)
				res, err := Translate(a, opts)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := res.Snapshot(res.Version()); err != nil {
					b.Fatal(err)
				}
				keep = res
			}
			b.StopTimer()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapInuse)/1e6, "MB-heap")
			b.ReportMetric(float64(len(keep.Listeners)), "listeners")
			b.ReportMetric(float64(len(keep.Clusters)), "clusters")
			runtime.KeepAlive(keep)
			perOp := b.Elapsed() / time.Duration(b.N)
			switch n {
			case 10000:
				testkit.Target(b, fmt.Sprintf("compile 10,000 entries in < 250 ms (took %v)", perOp.Round(time.Millisecond)), perOp < 250*time.Millisecond)
				testkit.Target(b, fmt.Sprintf("< 300 MB for the compile (%.0f MB heap in use)", float64(ms.HeapInuse)/1e6), ms.HeapInuse < 300e6)
			case 100000:
				testkit.Target(b, fmt.Sprintf("compile 100,000 entries in < 3 s (took %v)", perOp.Round(time.Millisecond)), perOp < 3*time.Second)
			}
		})
	}
}

// BenchmarkValidate is Resources.Validate (every proto's ValidateAll) on
// the translation of n generated ServiceEntries.
func BenchmarkValidate(b *testing.B) {
	for _, n := range scaleSizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			res, err := Translate(compileGenerated(b, gen.ServiceEntries(n, 1)), scaleOptions(b))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := res.Validate(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// publish updates the server with a and waits (at most timeout) for
// Envoy's ACK.
func (e *realEnvoy) publish(b *testing.B, a *serviceentry.Allowlist, timeout time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	version, err := e.srv.Update(ctx, a)
	if err != nil {
		b.Fatal(err)
	}
	if err := e.srv.WaitAcked(ctx, version); err != nil {
		b.Fatal(err)
	}
}

// envoyMemory is what one Envoy holds.
type envoyMemory struct {
	allocated, rss, configDump, stats int
}

// memory returns Envoy's allocated heap bytes, its resident set, the size
// of its config_dump and how many stats it keeps.
func (e *realEnvoy) memory(b *testing.B) envoyMemory {
	b.Helper()
	get := func(path string) []byte {
		resp, err := http.Get("http://" + e.admin + path)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return body
	}
	var m struct {
		Allocated string `json:"allocated"`
	}
	if err := json.Unmarshal(get("/memory"), &m); err != nil {
		b.Fatal(err)
	}
	allocated, err := strconv.Atoi(m.Allocated)
	if err != nil {
		b.Fatal(err)
	}
	out := envoyMemory{allocated: allocated, configDump: len(get("/config_dump")), stats: bytes.Count(get("/stats"), []byte("\n"))}
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.pid())); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
				out.rss = kb * 1024
			}
		}
	}
	return out
}

// scaleSecrets is the one SDS secret the generated DestinationRules need
// (the system CA bundle's name), with a throwaway certificate.
func scaleSecrets(b *testing.B) []*tlsv3.Secret {
	pemBytes := testkit.NewCA(b, "scale").CertPEM()
	return []*tlsv3.Secret{{Name: "ca/system", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: pemBytes}}}}}}
}

// sizes returns the marshalled size of every resource, by type and name.
func sizes(b *testing.B, res *Resources) map[string]int {
	out := map[string]int{}
	opts := proto.MarshalOptions{Deterministic: true}
	for _, m := range res.messages() {
		buf, err := opts.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		out[fmt.Sprintf("%T|%s", m, name(m))] = len(buf)
		out[fmt.Sprintf("%T|%s|digest", m, name(m))] = int(crc(buf))
	}
	return out
}

// crc is a cheap content digest (FNV-1a) to tell changed resources apart.
func crc(buf []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range buf {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}

// diff compares two translations: the bytes of resources whose content
// changed (or that are new), and the bytes of all resources.
func diff(before, after map[string]int) (changed, total int) {
	for k, size := range after {
		if strings.HasSuffix(k, "|digest") {
			continue
		}
		total += size
		if before[k] != size || before[k+"|digest"] != after[k+"|digest"] {
			changed += size
		}
	}
	return changed, total
}

func percentile(d []time.Duration, p float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return float64(s[i]) / float64(time.Millisecond)
}

// BenchmarkIncrementalACK publishes 10,000 ServiceEntries to a real Envoy
// over delta xDS, then changes one ServiceEntry 100 times (a host added,
// a different one each time) and times Server.Update plus WaitAcked until
// Envoy ACKs each new version (p50-ms, p99-ms); entry-p50-ms and
// entry-p99-ms add the compile of the changed configuration, which a
// source runs before Update: the Kubernetes source's path, which keeps
// the validated resources of unchanged objects and compiles with the last
// allowlist (CompileConfigWith); the folder source also parses the files. The sub-benchmarks change a TLS entry (the
// commonest kind) and an HTTP entry (whose hosts share the port's route
// table). It is one measurement whatever b.N is: run it with -benchtime 1x.
func BenchmarkIncrementalACK(b *testing.B) {
	const n, changes = 10000, 100
	opts := scaleOptions(b)
	e := startEnvoy(b, opts, zap.NewNop(), func() []*tlsv3.Secret { return scaleSecrets(b) }, b.Skip)
	defer e.stop()

	data := gen.ServiceEntries(n, 1)
	cfg, problems := serviceentry.ParseConfig("gen.yaml", data)
	base := serviceentry.CompileConfig(cfg, problems)
	initial := e.srv.PushedBytes()
	e.publish(b, base, 120*time.Second)
	b.Logf("initial push of %d entries: %.1f MB", n, float64(e.srv.PushedBytes()-initial)/1e6)

	for _, kind := range []struct {
		name string
		kind gen.Kind
	}{{"tls-entry", gen.KindTLS}, {"http-entry", gen.KindHTTP}} {
		b.Run(kind.name, func(b *testing.B) {
			victim := -1
			for i := range cfg.Entries { // Config keeps file order
				if gen.KindOf(i) == kind.kind {
					victim = i
					break
				}
			}
			prevRes, err := Translate(base, opts)
			if err != nil {
				b.Fatal(err)
			}
			prev := sizes(b, prevRes)
			var took, update, fromEntry []time.Duration
			last := base
			var changedSum, totalSum, pushedSum int
			for i := range changes {
				entry := *cfg.Entries[victim]
				entry.Hosts = append(slices.Clone(entry.Hosts), fmt.Sprintf("changed-%s-%d.bench.example", kind.name, i))
				c := cfg
				c.Entries = slices.Clone(cfg.Entries)
				c.Entries[victim] = &entry
				compileStart := time.Now()
				a := serviceentry.CompileConfigWith(c, problems, last)
				compiled := time.Since(compileStart)
				last = a
				res, err := Translate(a, opts)
				if err != nil {
					b.Fatal(err)
				}
				now := sizes(b, res)
				changed, total := diff(prev, now)
				changedSum, totalSum = changedSum+changed, totalSum+total
				prev = now
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				before := e.srv.PushedBytes()

				start := time.Now()
				version, err := e.srv.Update(ctx, a)
				if err != nil {
					b.Fatal(err)
				}
				update = append(update, time.Since(start))
				if err := e.srv.WaitAcked(ctx, version); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
				fromEntry = append(fromEntry, compiled+time.Since(start))
				cancel()
				pushedSum += int(e.srv.PushedBytes() - before)
			}
			// The base configuration again, for the next sub-benchmark.
			e.publish(b, base, 60*time.Second)
			b.ReportMetric(percentile(took, 0.5), "p50-ms")
			b.ReportMetric(percentile(took, 0.99), "p99-ms")
			testkit.Target(b, fmt.Sprintf("one changed entry ACKed in < 50 ms p99 (%.0f ms)", percentile(took, 0.99)), percentile(took, 0.99) < 50)
			testkit.Target(b, fmt.Sprintf("one changed entry ACKed in < 80 ms p99 from the changed entry (%.0f ms)", percentile(fromEntry, 0.99)), percentile(fromEntry, 0.99) < 80)
			testkit.Target(b, fmt.Sprintf("bytes pushed proportional to the change (%.1f KB per change, all resources %.0f KB)",
				float64(pushedSum)/changes/1e3, float64(totalSum)/changes/1e3), pushedSum/changes < totalSum/changes/100)
			b.ReportMetric(percentile(fromEntry, 0.5), "entry-p50-ms")
			b.ReportMetric(percentile(fromEntry, 0.99), "entry-p99-ms")
			b.ReportMetric(percentile(update, 0.5), "update-p50-ms")
			b.ReportMetric(percentile(update, 0.99), "update-p99-ms")
			b.ReportMetric(float64(changedSum)/changes/1e3, "changed-KB")
			b.ReportMetric(float64(pushedSum)/changes/1e3, "pushed-KB")
			b.ReportMetric(float64(totalSum)/changes/1e3, "total-KB")
		})
	}
}

// BenchmarkEnvoyMemory publishes n generated ServiceEntries to a fresh
// Envoy, waits for the ACK and reads Envoy's allocated heap (/memory) and
// the size of its /config_dump; the baseline is a fresh Envoy with the
// empty allowlist, measured first in the same run. One measurement per
// size whatever b.N is: run it with -benchtime 1x.
func BenchmarkEnvoyMemory(b *testing.B) {
	measure := func(b *testing.B, n int, hostStats, everyCluster bool) envoyMemory {
		opts := scaleOptions(b)
		if everyCluster {
			opts.ODCDSCluster = ""
		}
		e := startEnvoy(b, opts, zap.NewNop(), func() []*tlsv3.Secret { return scaleSecrets(b) }, b.Skip,
			func(c *envoy.BootstrapConfig) { c.HostStats = hostStats })
		defer e.stop()
		e.publish(b, compileGenerated(b, gen.ServiceEntries(n, 1)), 120*time.Second)
		// Let the DNS clusters' first (failing) resolutions settle.
		time.Sleep(2 * time.Second)
		return e.memory(b)
	}
	empty := measure(b, 0, false, false)
	b.Logf("empty allowlist: Envoy %.1f MB allocated, %.1f MB resident, config_dump %.2f MB, %d stats",
		float64(empty.allocated)/1e6, float64(empty.rss)/1e6, float64(empty.configDump)/1e6, empty.stats)
	for _, n := range append(scaleSizes, 100000) {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			m := measure(b, n, false, false)
			b.ReportMetric(float64(m.allocated)/1e6, "envoy-MB")
			b.ReportMetric(float64(m.rss)/1e6, "envoy-RSS-MB")
			b.ReportMetric(float64(m.allocated)/float64(empty.allocated), "x-of-empty")
			b.ReportMetric(float64(m.configDump)/1e6, "config-dump-MB")
			b.ReportMetric(float64(m.stats), "stats")
			b.ReportMetric(float64(empty.allocated)/1e6, "empty-envoy-MB")
			if n == 10000 {
				testkit.Target(b, fmt.Sprintf("Envoy at 10,000 entries <= 150 MB resident (%.0f MB)", float64(m.rss)/1e6), m.rss <= 150e6)
				// The same allowlist with every cluster sent
				// (--on-demand-clusters=false), and with every host's
				// stats too, in the same run.
				every := measure(b, n, false, true)
				b.ReportMetric(float64(every.rss)/1e6, "every-cluster-RSS-MB")
				b.Logf("with --on-demand-clusters=false: %.0f MB allocated, %.0f MB resident, %d stats; on demand: %.2fx resident",
					float64(every.allocated)/1e6, float64(every.rss)/1e6, every.stats, float64(m.rss)/float64(every.rss))
				all := measure(b, n, true, true)
				b.ReportMetric(float64(all.rss)/1e6, "host-stats-RSS-MB")
				b.ReportMetric(float64(all.stats), "host-stats-stats")
				b.Logf("and with --envoy-host-stats: %.0f MB allocated, %.0f MB resident, %d stats; on demand without: %.2fx resident",
					float64(all.allocated)/1e6, float64(all.rss)/1e6, all.stats, float64(m.rss)/float64(all.rss))
			}
			if n == 100000 {
				testkit.Target(b, fmt.Sprintf("Envoy at 100,000 entries <= 500 MB resident (%.0f MB)", float64(m.rss)/1e6), m.rss <= 500e6)
			}
		})
	}
}
