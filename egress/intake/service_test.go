package intake

import (
	"context"
	"io"
	"testing"

	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/egress/xds"
)

// fakeStream is an Access Log Service stream that delivers msgs, then
// ends.
type fakeStream struct {
	grpc.ServerStream
	msgs []*accesslogv3.StreamAccessLogsMessage
}

func (f *fakeStream) Recv() (*accesslogv3.StreamAccessLogsMessage, error) {
	if len(f.msgs) == 0 {
		return nil, io.EOF
	}
	m := f.msgs[0]
	f.msgs = f.msgs[1:]
	return m, nil
}
func (f *fakeStream) SendAndClose(*accesslogv3.StreamAccessLogsResponse) error { return nil }
func (f *fakeStream) Context() context.Context                                 { return context.Background() }

// TestStreamRefusesMalformedTags: entries whose tags carry a layer,
// verdict, reason or port outside the fixed sets never become decisions.
func TestStreamRefusesMalformedTags(t *testing.T) {
	var got []*decision.Decision
	s, err := New(Config{Sink: func(d *decision.Decision) { got = append(got, d) }})
	if err != nil {
		t.Fatal(err)
	}
	tcp := func(tags map[string]string) *datav3.TCPAccessLogEntry {
		return &datav3.TCPAccessLogEntry{CommonProperties: commonProps(tags, nil)}
	}
	good := map[string]string{xds.TagLayer: "tls", xds.TagPort: "443", xds.TagVerdict: "deny", xds.TagReason: "not_in_registry"}
	bad := []map[string]string{
		{xds.TagLayer: "smtp", xds.TagPort: "443", xds.TagVerdict: "deny", xds.TagReason: "not_in_registry"},
		{xds.TagLayer: "tls", xds.TagPort: "443", xds.TagVerdict: "pwned", xds.TagReason: "not_in_registry"},
		{xds.TagLayer: "tls", xds.TagPort: "443", xds.TagVerdict: "deny", xds.TagReason: "because"},
	}
	entries := []*datav3.TCPAccessLogEntry{tcp(good)}
	for _, b := range bad {
		entries = append(entries, tcp(b))
	}
	stream := &fakeStream{msgs: []*accesslogv3.StreamAccessLogsMessage{{LogEntries: &accesslogv3.StreamAccessLogsMessage_TcpLogs{
		TcpLogs: &accesslogv3.StreamAccessLogsMessage_TCPAccessLogEntries{LogEntry: entries}}}}}
	if err := s.StreamAccessLogs(stream); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Reason != "not_in_registry" {
		t.Errorf("decisions %+v, want only the well-formed one", got)
	}
	if d, ok := FromTCP(tcp(map[string]string{xds.TagLayer: "tls", xds.TagPort: "70000", xds.TagVerdict: "deny", xds.TagReason: "no_sni"}), nil); !ok || d.Port != 0 {
		t.Errorf("a port over 65535 must not be kept: %+v", d)
	}
}
