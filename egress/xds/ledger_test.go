package xds

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/status"
)

// TestAckBookkeeping is WaitAcked's rule under delta xDS, where a type
// whose resources did not change is not sent again: a version is held once
// every type has ACKed the last version that changed it, or a later one.
func TestAckBookkeeping(t *testing.T) {
	l := newAckLedger(zap.NewNop())
	publish := func(version string, digests map[string]map[string]string) {
		l.publishing(version, "", digests)
		l.published(version)
	}
	nonce := 0
	// ack sends a response of typ at version and answers it (nack: with
	// an error), as the xDS callbacks do.
	ack := func(typ, version string, nack bool) {
		nonce++
		n := strings.Repeat("n", nonce)
		l.sentResponse(n, typ, version, 100)
		var detail *status.Status
		if nack {
			detail = &status.Status{Message: "bad listener"}
		}
		l.answered(n, typ, nil, detail)
	}
	holds := func(version string) bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.holds(version)
	}

	publish("v1", map[string]map[string]string{L: {"l": "1"}, C: {"a": "1"}, R: {"r": "1"}})
	ack(L, "v1", false)
	ack(C, "v1", false)
	if holds("v1") {
		t.Error("v1 held before its routes were ACKed")
	}
	ack(R, "v1", false)
	if !holds("v1") || l.AckedVersion() != "v1" {
		t.Errorf("v1 not held after every type ACKed it (AckedVersion %q)", l.AckedVersion())
	}

	// One cluster changes: only CDS has to ACK v2.
	publish("v2", map[string]map[string]string{L: {"l": "1"}, C: {"a": "2"}, R: {"r": "1"}})
	if holds("v2") {
		t.Error("v2 held before its cluster was ACKed")
	}
	ack(C, "v2", false)
	if !holds("v2") {
		t.Error("v2 not held: an unchanged type should not need ACKing again")
	}

	// A route only removed is never answered over delta: not waited for.
	publish("v3", map[string]map[string]string{L: {"l": "3"}, C: {"a": "2"}})
	if got := l.AckedVersion(); got != "v2" {
		t.Errorf("AckedVersion = %q before v3's listener ACK, want v2", got)
	}
	ack(L, "v3", false)
	if !holds("v3") {
		t.Error("v3 not held after its listener was ACKed")
	}

	// A later ACK of the same type covers the earlier version too.
	publish("v4", map[string]map[string]string{L: {"l": "4"}, C: {"a": "2"}})
	publish("v5", map[string]map[string]string{L: {"l": "5"}, C: {"a": "2"}})
	ack(L, "v5", false)
	if !holds("v4") || !holds("v5") {
		t.Error("an ACK of v5's listener should hold v4 and v5")
	}

	// A NACK ends the wait with the gateway's message.
	publish("v6", map[string]map[string]string{L: {"l": "6"}, C: {"a": "2"}})
	ack(L, "v6", true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.WaitAcked(ctx, "v6"); err == nil || !strings.Contains(err.Error(), "bad listener") {
		t.Errorf("WaitAcked(v6) = %v, want the rejection", err)
	}
	if err := l.WaitAcked(ctx, "never-published"); err == nil {
		t.Error("WaitAcked of an unknown version returned nil")
	}
	if got := l.PushedBytes(); got != int64(nonce*100) {
		t.Errorf("PushedBytes = %d after %d responses of 100 bytes", got, nonce)
	}
	if got := l.AckedVersion(); got != "v5" {
		t.Errorf("AckedVersion = %q after v6 was rejected, want v5", got)
	}
}

// TestResumedGatewayHoldsTheVersion: a gateway that reconnects holding the
// current resources (Envoy adopted by a restarted egressd) is sent nothing
// for a named type, so its initial resource versions must count as the ACK.
func TestResumedGatewayHoldsTheVersion(t *testing.T) {
	l := newAckLedger(zap.NewNop())
	l.publishing("v1", "", map[string]map[string]string{L: {"l": "1"}, C: {"a": "1"}, R: {"r": "1", "q": "1"}})
	l.published("v1")
	for _, typ := range []string{L, C} { // wildcard types are always answered
		l.sentResponse(typ, typ, "v1", 1)
		l.answered(typ, typ, nil, nil)
	}
	l.resumedWith(R, map[string]string{"r": "0"}) // an older route: not held
	if l.AckedVersion() != "" {
		t.Fatalf("AckedVersion = %q with a stale route", l.AckedVersion())
	}
	l.resumedWith(R, map[string]string{"r": "1", "q": "1"})
	if got := l.AckedVersion(); got != "v1" {
		t.Errorf("AckedVersion = %q after the gateway resumed with v1's routes, want v1", got)
	}
	// State of the world: the first request names the version held.
	l.publishing("v2", "", map[string]map[string]string{L: {"l": "2"}, C: {"a": "1"}, R: {"r": "1", "q": "1"}})
	l.published("v2")
	l.resumedAt(L, "v1")
	if l.AckedVersion() != "v1" {
		t.Errorf("an old version named on resume counted as v2")
	}
	l.resumedAt(L, "v2")
	if got := l.AckedVersion(); got != "v2" {
		t.Errorf("AckedVersion = %q after resuming at v2, want v2", got)
	}
}
