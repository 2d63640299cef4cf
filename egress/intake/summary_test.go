package intake

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/egressd/egressd/egress/xds"
	"github.com/egressd/egressd/serviceentry/vocab"
)

func counterFamily(name string, metrics ...*dto.Metric) *dto.MetricFamily {
	return &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_COUNTER.Enum(), Metric: metrics}
}

func counter(v float64, labels ...string) *dto.Metric {
	m := &dto.Metric{Counter: &dto.Counter{Value: proto.Float64(v)}}
	for i := 0; i+1 < len(labels); i += 2 {
		m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(labels[i]), Value: proto.String(labels[i+1])})
	}
	return m
}

func TestSummaryDecisions(t *testing.T) {
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	api := []string{xds.AllowedTagHost, "API.example.com:80", xds.AllowedTagPort, "80", xds.AllowedTagRouteEntry, "-", xds.AllowedTagClusterEntry, "shop/api"}
	cdn := []string{xds.AllowedTagHost, "img.cdn.example.com", xds.AllowedTagPort, "80", xds.AllowedTagRouteEntry, "shop/cdn", xds.AllowedTagClusterEntry, "-"}
	idle := []string{xds.AllowedTagHost, "idle.example.com", xds.AllowedTagPort, "80", xds.AllowedTagRouteEntry, "-", xds.AllowedTagClusterEntry, "shop/idle"}
	ds := SummaryDecisions([]*dto.MetricFamily{
		counterFamily("server.uptime", counter(3)),
		counterFamily(xds.AllowedStatPrefix+"."+xds.AllowedRequests, counter(7, api...), counter(2, cdn...), counter(0, idle...),
			counter(4, xds.AllowedTagHost, "bad.example.com", xds.AllowedTagPort, "x")),
		counterFamily(xds.AllowedStatPrefix+"."+xds.AllowedBytesReceived, counter(700, api...), counter(20, cdn...)),
		counterFamily(xds.AllowedStatPrefix+"."+xds.AllowedBytesSent, counter(7000, api...), counter(200, cdn...), counter(5, idle...)),
	}, at)
	if len(ds) != 2 {
		t.Fatalf("decisions %+v, want two (the idle counter moved no requests; a bad port is skipped)", ds)
	}
	a, c := ds[0], ds[1]
	if a.Host != "api.example.com" || a.Port != 80 || a.ServiceEntry != "shop/api" || a.Count != 7 || a.BytesReceived != 700 || a.BytesSent != 7000 ||
		a.Verdict != vocab.VerdictAllow || a.Reason != vocab.ReasonAllowed || a.Layer != vocab.LayerHTTP || !a.Time.Equal(at) || a.Requests() != 7 {
		t.Errorf("api summary %+v", a)
	}
	if c.Host != "img.cdn.example.com" || c.ServiceEntry != "shop/cdn" || c.Count != 2 {
		t.Errorf("cdn summary %+v", c)
	}
	if !a.Valid() || a.Source.IsValid() {
		t.Errorf("a summary is a valid decision without a source: %+v", a)
	}
}
