package intake

import (
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/egress/xds"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// FuzzAccessLogEntries: no Access Log Service message (any bytes a client
// of the xDS port can send) makes the conversion panic, and every
// decision it yields that the intake accepts is well formed.
func FuzzAccessLogEntries(f *testing.F) {
	tags := map[string]string{xds.TagLayer: "http", xds.TagPort: "80", xds.TagVerdict: "allow", xds.TagReason: "allowed", xds.TagServiceEntry: "ci/api"}
	seeds := []*accesslogv3.StreamAccessLogsMessage{
		{LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
			LogEntry: []*datav3.HTTPAccessLogEntry{{
				CommonProperties: commonProps(tags, func(c *datav3.AccessLogCommon) { c.ResponseFlags = &datav3.ResponseFlags{NoHealthyUpstream: true} }),
				Request:          &datav3.HTTPRequestProperties{Authority: "[::1]:80", Path: "/", RequestMethod: corev3.RequestMethod_GET},
				Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(403),
					ResponseCodeDetails: "rbac_access_denied_matched_policy[" + xds.GuardPolicyLoop + "]"},
			}},
		}}},
		{LogEntries: &accesslogv3.StreamAccessLogsMessage_TcpLogs{TcpLogs: &accesslogv3.StreamAccessLogsMessage_TCPAccessLogEntries{
			LogEntry: []*datav3.TCPAccessLogEntry{{CommonProperties: commonProps(map[string]string{
				xds.TagLayer: "tls", xds.TagPort: "443", xds.TagVerdict: "deny", xds.TagReason: "not_in_registry", xds.TagChain: "tcp|5432|ns/x",
			}, func(c *datav3.AccessLogCommon) {
				c.TlsProperties = &datav3.TLSProperties{TlsSniHostname: "127.0.0.1"}
				c.ConnectionTerminationDetails = "rbac_access_denied_matched_policy[ns/p#0]"
			})}},
		}}},
	}
	for _, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	a := compile(f, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: ci}
spec:
  hosts: [api.example.test, "*.wild.example.test"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  endpoints: [{address: backend.example.test}]
`)
	ledger := refusedLedger("backend.example.test", "ci/api", "127.0.0.1")
	f.Fuzz(func(t *testing.T, data []byte) {
		var m accesslogv3.StreamAccessLogsMessage
		if proto.Unmarshal(data, &m) != nil {
			return
		}
		var ds []*decision.Decision
		for _, e := range m.GetHttpLogs().GetLogEntry() {
			if d, ok := FromHTTP(e, a); ok {
				ds = append(ds, d)
			}
		}
		for _, e := range m.GetTcpLogs().GetLogEntry() {
			if d, ok := FromTCP(e, a); ok {
				ds = append(ds, d)
			}
		}
		for i, d := range ds {
			valid := d.Valid()
			if Refused(d, a, ledger, time.Now()) && (d.Verdict != vocab.VerdictDeny || !d.Valid() || d.Detail == "") {
				t.Fatalf("a refusal made %+v", d)
			}
			if valid && !d.Valid() {
				t.Fatalf("decision %d became invalid: %+v", i, d)
			}
			if d.Layer == vocab.LayerHTTP && d.Port > 65535 {
				t.Fatalf("port %d", d.Port)
			}
		}
	})
}
