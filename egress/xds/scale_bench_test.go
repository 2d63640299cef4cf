package xds

// Scale benchmarks (issue #9): generated allowlists of 100 to 10,000
// ServiceEntries, compiled to a snapshot, published to a real Envoy.
// The Envoy benchmarks are one-shot measurements: they ignore b.N (run
// them with -benchtime 1x) and report their own metrics.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/egressd/egressd/egress/envoy"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/gen"
)

var scaleSizes = []int{100, 1000, 10000}

// scaleOptions are the translation options of the scale benchmarks. The
// DNS resolver is a closed loopback port: 10,000 DNS clusters must not
// query a real resolver, and a refused query fails at once.
func scaleOptions(tb testing.TB) Options {
	// A loopback address of its own keeps the listeners off other sockets.
	listenIP := fmt.Sprintf("127.97.%d.%d", os.Getpid()%250+1, os.Getpid()/250%250+1)
	// egressd run's defaults: decisions by gRPC access log, no Envoy file log.
	return Options{ListenAddress: listenIP, PortOffset: 20000,
		ALSCluster: envoy.XDSClusterName, SecretNames: testSecretNames, DNSResolvers: []string{closedUDPPort(tb)}}
}

func closedUDPPort(tb testing.TB) string {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
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
	for _, n := range scaleSizes {
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

// memory returns Envoy's allocated heap bytes and the size of its
// config_dump.
func (e *realEnvoy) memory(b *testing.B) (allocated, configDump int) {
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
	return allocated, len(get("/config_dump"))
}

// scaleSecrets is the one SDS secret the generated DestinationRules need
// (the system CA bundle's name), with a throwaway certificate.
func scaleSecrets(b *testing.B) []*tlsv3.Secret {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scale"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
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

// pushed compares two translations: the bytes of resources whose content
// changed (or that are new), the bytes of every resource of a type with a
// change (what state-of-the-world xDS sends again), and the total.
func pushed(before, after map[string]int) (changed, sent, total int) {
	typeSize := map[string]int{}
	typeChanged := map[string]bool{}
	for k, size := range after {
		typ, rest, _ := cut(k)
		if len(rest) > 7 && rest[len(rest)-7:] == "|digest" {
			continue
		}
		typeSize[typ] += size
		total += size
		if before[k] != size || before[k+"|digest"] != after[k+"|digest"] {
			changed += size
			typeChanged[typ] = true
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			typ, _, _ := cut(k)
			typeChanged[typ] = true // a removed resource re-sends its type too
		}
	}
	for typ := range typeChanged {
		sent += typeSize[typ]
	}
	return changed, sent, total
}

func cut(k string) (typ, rest string, ok bool) {
	for i := 0; i < len(k); i++ {
		if k[i] == '|' {
			return k[:i], k[i+1:], true
		}
	}
	return k, "", false
}

func percentile(d []time.Duration, p float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return float64(s[i]) / float64(time.Millisecond)
}

// BenchmarkIncrementalACK publishes 10,000 ServiceEntries to a real Envoy,
// then changes one ServiceEntry 100 times (a host added to one TLS entry,
// a different host each time) and times Server.Update plus WaitAcked until
// Envoy ACKs each new version. It is one measurement whatever b.N is:
// run it with -benchtime 1x.
func BenchmarkIncrementalACK(b *testing.B) {
	const n, changes = 10000, 100
	opts := scaleOptions(b)
	e := startEnvoy(b, opts, zap.NewNop(), func() []*tlsv3.Secret { return scaleSecrets(b) }, b.Skip)
	defer e.stop()

	data := gen.ServiceEntries(n, 1)
	cfg, problems := serviceentry.ParseConfig("gen.yaml", data)
	base := serviceentry.CompileConfig(cfg, problems)
	e.publish(b, base, 120*time.Second)

	// The 11th entry is a TLS one (gen.KindOf); Config keeps file order.
	const victim = 10
	if gen.KindOf(victim) != gen.KindTLS {
		b.Fatal("entry 10 is not a TLS entry")
	}
	prevRes, err := Translate(base, opts)
	if err != nil {
		b.Fatal(err)
	}
	prev := sizes(b, prevRes)
	var took, update []time.Duration
	var changedSum, sentSum, totalSum int
	b.ResetTimer()
	for i := range changes {
		b.StopTimer()
		entry := *cfg.Entries[victim]
		entry.Hosts = append(slices.Clone(entry.Hosts), fmt.Sprintf("changed-%d.bench.example", i))
		c := cfg
		c.Entries = slices.Clone(cfg.Entries)
		c.Entries[victim] = &entry
		a := serviceentry.CompileConfig(c, problems)
		res, err := Translate(a, opts)
		if err != nil {
			b.Fatal(err)
		}
		now := sizes(b, res)
		changed, sent, total := pushed(prev, now)
		changedSum, sentSum, totalSum = changedSum+changed, sentSum+sent, totalSum+total
		prev = now
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		b.StartTimer()

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
		cancel()
	}
	b.StopTimer()
	b.ReportMetric(percentile(took, 0.5), "p50-ms")
	b.ReportMetric(percentile(took, 0.99), "p99-ms")
	b.ReportMetric(percentile(update, 0.5), "update-p50-ms")
	b.ReportMetric(percentile(update, 0.99), "update-p99-ms")
	b.ReportMetric(float64(changedSum)/changes/1e3, "changed-KB")
	b.ReportMetric(float64(sentSum)/changes/1e3, "sent-KB")
	b.ReportMetric(float64(totalSum)/changes/1e3, "total-KB")
}

// BenchmarkEnvoyMemory publishes n generated ServiceEntries to a fresh
// Envoy, waits for the ACK and reads Envoy's allocated heap (/memory) and
// the size of its /config_dump; the baseline is a fresh Envoy with the
// empty allowlist, measured first in the same run. One measurement per
// size whatever b.N is: run it with -benchtime 1x.
func BenchmarkEnvoyMemory(b *testing.B) {
	measure := func(b *testing.B, n int) (allocated, dump int) {
		e := startEnvoy(b, scaleOptions(b), zap.NewNop(), func() []*tlsv3.Secret { return scaleSecrets(b) }, b.Skip)
		defer e.stop()
		e.publish(b, compileGenerated(b, gen.ServiceEntries(n, 1)), 120*time.Second)
		// Let the DNS clusters' first (failing) resolutions settle.
		time.Sleep(2 * time.Second)
		return e.memory(b)
	}
	emptyAlloc, emptyDump := measure(b, 0)
	b.Logf("empty allowlist: Envoy %.1f MB allocated, config_dump %.2f MB", float64(emptyAlloc)/1e6, float64(emptyDump)/1e6)
	for _, n := range scaleSizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			allocated, dump := measure(b, n)
			b.ReportMetric(float64(allocated)/1e6, "envoy-MB")
			b.ReportMetric(float64(allocated)/float64(emptyAlloc), "x-of-empty")
			b.ReportMetric(float64(dump)/1e6, "config-dump-MB")
			b.ReportMetric(float64(emptyAlloc)/1e6, "empty-envoy-MB")
		})
	}
}
