package serviceentry

import (
	"slices"

	"google.golang.org/protobuf/proto"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Config is what one or more files hold, validated: the ServiceEntries,
// DestinationRules, AuthorizationPolicies and PeerAuthentications that
// CompileConfig turns into an Allowlist.
type Config struct {
	Entries               []*Entry
	Rules                 []*Rule
	AuthorizationPolicies []*AuthorizationPolicy
	PeerAuthentications   []*PeerAuthentication
	VirtualServices       []*VirtualService
	Sidecars              []*Sidecar
	// AuditNamespaces are namespaces whose Sidecar is dry-run (a source's
	// own knowledge, e.g. a namespace label); see Allowlist.AuditNamespaces.
	AuditNamespaces []string
}

// ParseConfig decodes and validates every resource in one file's bytes. It
// returns the valid ones and every problem; an invalid resource never hides
// the valid ones beside it. Two kinds of invalid resource are kept in a
// fail-closed form, so that a mistake never opens what the resource meant
// to close: a DestinationRule that asks for TLS origination (see
// invalidRule) and an ALLOW, DENY or CUSTOM AuthorizationPolicy (see
// invalidPolicy), even one that failed to decode (see salvagePolicy).
func ParseConfig(file string, data []byte) (Config, []Problem) {
	d := decode(file, data)
	objects, problems := d.objects, d.problems
	var c Config
	for _, f := range d.failed {
		var ps []Problem
		for _, p := range problems {
			if p.Ref == f.Ref {
				ps = append(ps, p)
			}
		}
		k, _ := LookupKind(f.Ref.Kind)
		var kept Config
		for _, why := range k.FailClosed(f.Object, ps, &kept) {
			if f.selectorLost {
				why.Message += "; its selector could not be read, so it applies to every workload"
			}
			problems = insertAfterRef(problems, why)
		}
		c.Add(kept)
	}
	built, ps := BuildConfig(objects)
	c.Add(built)
	problems = append(problems, ps...)
	return c, problems
}

// Parse is ParseConfig for callers that need only the ServiceEntries: it
// returns the valid entries and every problem, the DestinationRules' too.
func Parse(file string, data []byte) ([]*Entry, []Problem) {
	c, problems := ParseConfig(file, data)
	return c.Entries, problems
}

// invalidRule keeps an invalid DestinationRule that asks for TLS
// origination, so that its host fails closed: without it, traffic the rule
// meant to encrypt would leave in plaintext. Rules without a usable host,
// or that ask for no origination, are simply dropped.
func invalidRule(o Object, problems []Problem) *Rule {
	dr := o.DestinationRule
	host, err := NormalizeHost(dr.GetHost())
	if err != nil {
		return nil
	}
	asks := func(mode string) bool { return mode == string(TLSSimple) || mode == string(TLSMutual) }
	originates := asks(dr.GetTrafficPolicy().GetTls().GetMode().String())
	for _, p := range dr.GetTrafficPolicy().GetPortLevelSettings() {
		originates = originates || asks(p.GetTls().GetMode().String())
	}
	if !originates {
		return nil
	}
	reason := "it has errors"
	for _, p := range problems {
		if p.Severity == SeverityError {
			reason = p.Field + ": " + p.Message
			break
		}
	}
	return &Rule{Ref: o.Ref, Host: host, Invalid: reason}
}

// invalidPolicy keeps an invalid AuthorizationPolicy in a fail-closed form,
// as Istio does when it cannot build a policy: dropping it would allow what
// it meant to deny, or (when it is the only ALLOW policy) everything.
//
//   - ALLOW becomes an ALLOW policy without rules: it allows nothing itself,
//     and its presence makes the gateway deny what no other ALLOW policy
//     allows.
//   - DENY becomes a DENY policy with one rule that matches everything.
//   - CUSTOM (whose external authorizer egressd cannot ask) becomes a DENY
//     policy with the same rules when they are valid, so that the requests
//     it would have sent to the authorizer are denied; else it denies
//     everything, as DENY does.
//   - AUDIT is dropped: it only marks requests for the log.
//
// A policy whose selector is invalid is dropped too: its labels cannot
// match a real workload. The Problem returned says what the gateway does.
func invalidPolicy(o Object, problems []Problem) (*AuthorizationPolicy, Problem) {
	ap := o.AuthorizationPolicy
	v := &validator{ref: o.Ref}
	selector := v.selector("spec.selector", ap.GetSelector())
	if hasError(v.problems) {
		return nil, Problem{}
	}
	reason := "it has errors"
	for _, p := range problems {
		if p.Severity == SeverityError {
			reason = p.Field + ": " + p.Message
			break
		}
	}
	p := &AuthorizationPolicy{Ref: o.Ref, Selector: selector, Invalid: reason}
	why := Problem{Ref: o.Ref, Code: CodeFailClosed, Severity: SeverityError}
	switch ap.GetAction() {
	case securityv1beta1.AuthorizationPolicy_ALLOW:
		p.Action = AuthzAllow
		why.Message = "invalid, so this ALLOW policy allows nothing until it is fixed (fail closed): requests that no other ALLOW policy allows are denied"
	case securityv1beta1.AuthorizationPolicy_CUSTOM:
		p.Action = AuthzDeny
		p.Rules = []AuthzRule{{}}
		why.Message = "invalid, so the gateway denies every request this policy applies to until it is fixed (fail closed)"
		asDeny := proto.CloneOf(ap)
		asDeny.Action = securityv1beta1.AuthorizationPolicy_DENY
		asDeny.ActionDetail = nil
		if d, _ := ValidateAuthorizationPolicy(Object{Ref: o.Ref, AuthorizationPolicy: asDeny}); d != nil {
			p.Rules = d.Rules
			why.Message = "CUSTOM is not supported, so the gateway denies the requests this policy's rules match (fail closed), which it would have sent to the external authorizer"
		}
	case securityv1beta1.AuthorizationPolicy_DENY:
		p.Action = AuthzDeny
		p.Rules = []AuthzRule{{}}
		why.Message = "invalid, so the gateway denies every request this policy applies to until it is fixed (fail closed)"
	default:
		return nil, Problem{}
	}
	return p, why
}

// insertAfterRef inserts p after the last problem of p's resource, so that
// problems stay grouped by resource.
func insertAfterRef(problems []Problem, p Problem) []Problem {
	at := len(problems)
	for i := len(problems) - 1; i >= 0; i-- {
		if problems[i].Ref == p.Ref {
			at = i + 1
			break
		}
	}
	return slices.Insert(problems, at, p)
}

// CompileYAML decodes, validates and compiles one file's bytes (YAML or
// JSON) into an Allowlist: ParseConfig, then CompileConfig. Every problem
// found is in the Allowlist's Problems.
func CompileYAML(file string, data []byte) *Allowlist {
	cfg, problems := ParseConfig(file, data)
	return CompileConfig(cfg, problems)
}
