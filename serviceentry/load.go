package serviceentry

// Config is what one or more files hold, validated: the ServiceEntries and
// DestinationRules that CompileConfig turns into an Allowlist.
type Config struct {
	Entries []*Entry
	Rules   []*Rule
}

// ParseConfig decodes and validates every ServiceEntry and DestinationRule
// in one file's bytes. It returns the valid ones and every problem; an
// invalid resource never hides the valid ones beside it.
func ParseConfig(file string, data []byte) (Config, []Problem) {
	objects, problems := Decode(file, data)
	var c Config
	for _, o := range objects {
		switch {
		case o.ServiceEntry != nil:
			e, ps := Validate(o)
			problems = append(problems, ps...)
			if e != nil {
				c.Entries = append(c.Entries, e)
			}
		case o.DestinationRule != nil:
			r, ps := ValidateRule(o)
			problems = append(problems, ps...)
			if r == nil {
				r = invalidRule(o, ps)
			}
			if r != nil {
				c.Rules = append(c.Rules, r)
			}
		}
	}
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
