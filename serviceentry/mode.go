package serviceentry

import (
	"fmt"
	"strings"
)

// OutboundMode is what happens to traffic that no ServiceEntry allows.
type OutboundMode string

// Outbound modes, named as Istio's meshConfig.outboundTrafficPolicy names
// the first two.
const (
	// RegistryOnly denies every destination the allowlist does not name.
	RegistryOnly OutboundMode = "REGISTRY_ONLY"
	// AllowAny lets unlisted destinations through.
	AllowAny OutboundMode = "ALLOW_ANY"
	// Audit lets unlisted destinations through like AllowAny but records
	// each of them as audit-deny: exactly what RegistryOnly would refuse.
	// It is the step between allow-all and deny-by-default.
	Audit OutboundMode = "AUDIT"
)

// Forwards reports whether the mode lets unlisted destinations through.
func (m OutboundMode) Forwards() bool { return m == AllowAny || m == Audit }

// ParseOutboundMode parses a mode name, case-insensitively.
func ParseOutboundMode(s string) (OutboundMode, error) {
	switch m := OutboundMode(strings.ToUpper(strings.TrimSpace(s))); m {
	case RegistryOnly, AllowAny, Audit:
		return m, nil
	}
	return "", fmt.Errorf("unknown outbound mode %q: use %s, %s or %s", s, RegistryOnly, AllowAny, Audit)
}
