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
)

// ParseOutboundMode parses a mode name, case-insensitively.
func ParseOutboundMode(s string) (OutboundMode, error) {
	switch m := OutboundMode(strings.ToUpper(strings.TrimSpace(s))); m {
	case RegistryOnly, AllowAny:
		return m, nil
	}
	return "", fmt.Errorf("unknown outbound mode %q: use %s or %s", s, RegistryOnly, AllowAny)
}
