package xds

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/status"
)

// ackLedger is the xDS server's account of what it published and what the
// gateways hold: for each published version the version of each resource
// type a gateway must have ACKed to hold it (with delta xDS a type that
// did not change is not sent again), the responses in flight by nonce,
// the ACKs and NACKs received. WaitAcked and the health the dashboard
// shows read it. It is safe for concurrent use.
type ackLedger struct {
	log *zap.Logger

	mu       sync.Mutex
	version  string            // last published version
	acked    map[string]string // type URL -> last version a gateway ACKed
	nacked   string            // last NACK message
	rejected map[string]string // version -> NACK message
	sent     map[string]sent   // response nonce -> what it carried, until answered
	ackWatch chan struct{}     // closed and replaced on every ACK
	pushed   int64             // bytes of responses sent, all streams

	digests    map[string]map[string]string // type URL -> name -> digest, as published
	lastChange map[string]string            // type URL -> last version that changed it
	history    map[string]*published        // recent versions
	order      []string                     // history's versions, oldest first
}

func newAckLedger(log *zap.Logger) *ackLedger {
	return &ackLedger{
		log:        log,
		acked:      map[string]string{},
		rejected:   map[string]string{},
		sent:       map[string]sent{},
		ackWatch:   make(chan struct{}),
		lastChange: map[string]string{},
		history:    map[string]*published{},
	}
}

// current returns the last published version and its digests.
func (l *ackLedger) current() (string, map[string]map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.version, l.digests
}

// publishing records version as about to be published (before the cache
// sends anything, so an ACK cannot arrive for a version the ledger does
// not know), and published makes it the current one once it is.
func (l *ackLedger) publishing(version, allowlist string, digests map[string]map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record(version, allowlist, digests)
}

func (l *ackLedger) published(version string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.version = version
}

// Version is the last published configuration version.
func (l *ackLedger) Version() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.version
}

// Rejected returns the error of the last configuration a gateway
// rejected (NACKed), or "" if none was.
func (l *ackLedger) Rejected() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nacked
}

// PushedBytes is the encoded size of every xDS response sent so far.
func (l *ackLedger) PushedBytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pushed
}

// sent is what one response carried: its resource type and version.
type sent struct{ typeURL, version string }

// published is one version the server published: its place in the order
// of publishing, and, for each resource type, the version a gateway must
// have ACKed (or passed) to hold this version's resources of that type.
// With delta xDS a type that did not change is not sent again, so its
// requirement is the last version that changed it.
type published struct {
	seq  int
	need map[string]string
	// allowlist is the version of the allowlist it was translated from.
	allowlist string
}

// historyKept bounds how many published versions WaitAcked can wait for.
const historyKept = 256

// Resource types whose changes a version waits for. Routes, secrets and
// ECDS filter configurations are only sent to a gateway that asks for them
// by name (the listeners and clusters it holds do), so one that was only
// removed is
// never answered for; a removed listener or cluster is.
var (
	wildcardTypes = []string{resourcev3.ListenerType, resourcev3.ClusterType}
	namedTypes    = []string{resourcev3.RouteType, resourcev3.SecretType, resourcev3.ExtensionConfigType}
)

// record notes version as published with the given per-resource digests.
// Call with l.mu held.
func (l *ackLedger) record(version, allowlist string, digests map[string]map[string]string) {
	changed := func(typ string, removals bool) bool {
		before, after := l.digests[typ], digests[typ]
		for n, d := range after {
			if before[n] != d {
				return true
			}
		}
		if removals {
			for n := range before {
				if _, ok := after[n]; !ok {
					return true
				}
			}
		}
		return false
	}
	for _, t := range wildcardTypes {
		if changed(t, true) {
			l.lastChange[t] = version
		}
	}
	for _, t := range namedTypes {
		if changed(t, false) {
			l.lastChange[t] = version
		}
	}
	l.digests = digests
	// Numbered from 1: 0 is "before any version" (see onDemand).
	p := &published{seq: 1, need: map[string]string{}, allowlist: allowlist}
	if n := len(l.order); n > 0 {
		p.seq = l.history[l.order[n-1]].seq + 1
	}
	for t, v := range l.lastChange {
		p.need[t] = v
	}
	if _, ok := l.history[version]; ok {
		// Republished (A -> B -> A): it is new again.
		l.order = slices.DeleteFunc(l.order, func(v string) bool { return v == version })
	}
	l.history[version] = p
	l.order = append(l.order, version)
	if len(l.order) > historyKept {
		delete(l.history, l.order[0])
		l.order = l.order[1:]
	}
}

// seq is version's place in the order of publishing (from 1), while the
// ledger remembers it.
func (l *ackLedger) seq(version string) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.history[version]
	if !ok {
		return 0, false
	}
	return p.seq, true
}

// holds reports whether the gateway holds version: for every resource
// type it has ACKed the version that type needs, or a later one. Call
// with l.mu held.
func (l *ackLedger) holds(version string) bool {
	p, ok := l.history[version]
	if !ok {
		return false
	}
	for t, need := range p.need {
		got := l.acked[t]
		if got == need {
			continue
		}
		g, ok1 := l.history[got]
		n, ok2 := l.history[need]
		if !ok1 || !ok2 || g.seq < n.seq {
			return false
		}
	}
	return true
}

// missing says which resource types a gateway has not ACKed for version.
func (l *ackLedger) missing(version string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.history[version]
	if !ok {
		return "unknown version"
	}
	var out []string
	for t, need := range p.need {
		if got := l.acked[t]; got != need {
			out = append(out, fmt.Sprintf("%s needs %s, has %q", strings.TrimPrefix(t, "type.googleapis.com/"), need, got))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// AllowlistVersion is the version of the allowlist the last published
// configuration was translated from ("" before the first).
func (l *ackLedger) AllowlistVersion() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.history[l.version]; ok {
		return p.allowlist
	}
	return ""
}

// AckedAllowlistVersion is the version of the allowlist behind
// AckedVersion: what the gateway enforces ("" when it holds nothing
// egressd published).
func (l *ackLedger) AckedAllowlistVersion() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v := l.newestHeld(); v != "" {
		return l.history[v].allowlist
	}
	return ""
}

// AckedVersion is the newest published version a gateway holds
// entirely (see WaitAcked), or "" if none.
func (l *ackLedger) AckedVersion() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.newestHeld()
}

// newestHeld is AckedVersion; call with l.mu held.
func (l *ackLedger) newestHeld() string {
	for i := len(l.order) - 1; i >= 0; i-- {
		if l.holds(l.order[i]) {
			return l.order[i]
		}
	}
	return ""
}

// WaitAcked blocks until a gateway holds version, or ctx ends: it has
// ACKed, for every resource type, the last version that changed that type
// (or a later one). Over delta xDS, where only changed resources are sent,
// a version that changed one cluster is held once that cluster is ACKed.
func (l *ackLedger) WaitAcked(ctx context.Context, version string) error {
	for {
		l.mu.Lock()
		_, known := l.history[version]
		done := l.holds(version)
		watch := l.ackWatch
		nacked := l.rejected[version]
		l.mu.Unlock()
		if done {
			return nil
		}
		if !known {
			return fmt.Errorf("xds: version %s was not published (or is too old to wait for)", version)
		}
		if nacked != "" {
			return fmt.Errorf("xds: gateway rejected configuration while waiting for %s: %s", version, nacked)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("xds: waiting for ACK of %s (%s): %w", version, l.missing(version), ctx.Err())
		case <-watch:
		}
	}
}

// sentResponse remembers which type and version a response carried, so
// the ACK or NACK that names it by nonce is credited to the right one.
func (l *ackLedger) sentResponse(nonce, typeURL, version string, size int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pushed += int64(size)
	if len(l.sent) > 4096 {
		// Responses on streams that closed unanswered; forget them.
		clear(l.sent)
	}
	l.sent[nonce] = sent{typeURL: typeURL, version: version}
}

// resumedWith handles the first delta request of a gateway that already
// holds resources (Envoy reconnecting, or adopted by a restarted egressd):
// initial are their versions, our digests. If they are exactly the
// current resources of the type, the cache sends nothing (they did not
// change), so there is no ACK to wait for: the gateway holds the current
// version of the type already.
func (l *ackLedger) resumedWith(typeURL string, initial map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	current := l.digests[typeURL]
	if l.version == "" || len(current) == 0 {
		return
	}
	for name, v := range initial {
		if current[name] != v {
			return
		}
	}
	if slices.Contains(wildcardTypes, typeURL) {
		// Wildcard types hold every resource, not a subscribed few.
		if len(initial) != len(current) {
			return
		}
	}
	l.ack(typeURL, l.version)
}

// resumedAt is resumedWith for a state-of-the-world stream: the gateway's
// first request names the version it holds, and is not answered again if
// that is the current one.
func (l *ackLedger) resumedAt(typeURL, version string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if version == l.version {
		l.ack(typeURL, version)
	}
}

// ack records that a gateway holds version of typeURL and wakes waiters.
// Call with l.mu held.
func (l *ackLedger) ack(typeURL, version string) {
	if l.acked[typeURL] != version {
		l.acked[typeURL] = version
		close(l.ackWatch)
		l.ackWatch = make(chan struct{})
	}
}

// answered handles a request that answers the response with nonce: an
// ACK, or a NACK when detail is set. A request without a nonce (the
// first on a stream, or a new subscription) answers nothing.
func (l *ackLedger) answered(nonce, typeURL string, node *corev3.Node, detail *status.Status) {
	if nonce == "" {
		return
	}
	l.mu.Lock()
	r, ok := l.sent[nonce]
	delete(l.sent, nonce)
	if detail != nil {
		l.nacked = detail.GetMessage()
		if ok {
			l.rejected[r.version] = l.nacked
		}
		close(l.ackWatch) // wake waiters: a NACK is an answer too
		l.ackWatch = make(chan struct{})
		l.mu.Unlock()
		l.log.Error("gateway rejected configuration",
			zap.String("type", typeURL), zap.String("node", node.GetId()), zap.String("version", r.version),
			zap.String("error", detail.GetMessage()))
		return
	}
	if ok {
		l.ack(r.typeURL, r.version)
	}
	l.mu.Unlock()
}
