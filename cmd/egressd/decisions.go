package main

import (
	"github.com/egressd/egressd/dnsproxy"
	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// dnsDecision maps the DNS proxy's decision onto the decision event.
func dnsDecision(d dnsproxy.Decision) *decision.Decision {
	return &decision.Decision{
		Time:         d.Time,
		Layer:        vocab.LayerDNS,
		Verdict:      d.Verdict,
		Reason:       d.Reason,
		Source:       d.Source,
		Host:         d.Host,
		Protocol:     "DNS/" + d.QType,
		ServiceEntry: d.ServiceEntry,
		Detail:       d.Detail,
	}
}
