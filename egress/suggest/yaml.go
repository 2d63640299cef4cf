package suggest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/egressd/egressd/serviceentry"
	yaml "go.yaml.in/yaml/v3"
)

// ManagedByLabel marks the entries egressd suggested, so that they can be
// found (and reviewed) once applied.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "egressd-suggest"
)

// The resource as written, its fields in a stable order.
type (
	resource struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Metadata   metadata `yaml:"metadata"`
		Spec       spec     `yaml:"spec"`
	}
	metadata struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace,omitempty"`
		Labels    map[string]string `yaml:"labels"`
	}
	spec struct {
		Hosts      []string   `yaml:"hosts"`
		Ports      []yamlPort `yaml:"ports"`
		Location   string     `yaml:"location"`
		Resolution string     `yaml:"resolution"`
	}
	yamlPort struct {
		Number   uint32 `yaml:"number"`
		Name     string `yaml:"name"`
		Protocol string `yaml:"protocol"`
	}
)

// YAML writes ss as networking.istio.io/v1 ServiceEntries, one YAML
// document each, every one preceded by a comment that says why (denials,
// sources, last seen, covered hosts, notes). It checks its own output with
// serviceentry.Parse and fails if egressd would refuse any of it. No
// suggestions give no bytes.
func YAML(ss []Suggestion, o Options) ([]byte, error) {
	var b bytes.Buffer
	for i, s := range ss {
		if i > 0 {
			b.WriteString("---\n")
		}
		writeComment(&b, s)
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(toResource(s, o.Namespace)); err != nil {
			return nil, fmt.Errorf("suggest: encoding %s: %w", s.Host, err)
		}
		if err := enc.Close(); err != nil {
			return nil, fmt.Errorf("suggest: encoding %s: %w", s.Host, err)
		}
	}
	out := b.Bytes()
	if err := check(out, len(ss)); err != nil {
		return nil, err
	}
	return out, nil
}

// toResource lays out one suggestion as a ServiceEntry.
func toResource(s Suggestion, namespace string) resource {
	r := resource{
		APIVersion: "networking.istio.io/v1",
		Kind:       serviceentry.KindServiceEntry,
		Metadata: metadata{
			Name:      s.Name,
			Namespace: namespace,
			Labels:    map[string]string{ManagedByLabel: ManagedByValue},
		},
		Spec: spec{
			Hosts:      []string{s.Host},
			Location:   string(serviceentry.LocationMeshExternal),
			Resolution: s.Resolution,
		},
	}
	for _, p := range s.Ports {
		r.Spec.Ports = append(r.Spec.Ports, yamlPort{Number: p.Number, Name: p.Name, Protocol: p.Protocol})
	}
	return r
}

// writeComment writes the reasons for s as YAML comment lines.
func writeComment(b *bytes.Buffer, s Suggestion) {
	plural := "s"
	if s.Denials == 1 {
		plural = ""
	}
	line := func(format string, args ...any) {
		b.WriteString("# " + oneLine(fmt.Sprintf(format, args...)) + "\n")
	}
	line("%d denial%s, last seen %s", s.Denials, plural, s.LastSeen.UTC().Format(time.RFC3339))
	if len(s.Sources) > 0 {
		line("sources: %s", strings.Join(s.Sources, ", "))
	}
	if len(s.Covers) > 0 {
		line("covers: %s", strings.Join(s.Covers, ", "))
	}
	for _, n := range s.Notes {
		line("note: %s", n)
	}
}

// oneLine keeps text inside its comment line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r < ' ' && r != '\t' {
			return ' '
		}
		return r
	}, s)
}

// check parses out as egressd would and fails on any error problem, or
// when an entry went missing.
func check(out []byte, want int) error {
	entries, problems := serviceentry.Parse("suggestions.yaml", out)
	var errs []error
	for _, p := range problems {
		if p.Severity == serviceentry.SeverityError {
			errs = append(errs, p)
		}
	}
	if len(errs) == 0 && len(entries) != want {
		errs = append(errs, fmt.Errorf("%d ServiceEntries parsed back, want %d", len(entries), want))
	}
	if len(errs) > 0 {
		return fmt.Errorf("suggest: the generated ServiceEntries fail validation: %w", errors.Join(errs...))
	}
	return nil
}
