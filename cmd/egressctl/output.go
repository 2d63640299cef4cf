package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/egressd/egressd/egress/decision"
)

// displayLocation is the time zone of the table's TIME column; tests fix
// it.
var displayLocation = time.Local

// maxDetail is the most characters of the DETAIL column.
const maxDetail = 60

// printer writes decisions in one output format.
type printer interface {
	// print writes one decision; raw is its JSON as received.
	print(raw json.RawMessage, d *decision.Decision) error
	// flush writes out what print buffered.
	flush() error
}

// newPrinter returns the printer for an -o value.
func newPrinter(format string, w io.Writer) (printer, error) {
	switch format {
	case "table":
		return &tablePrinter{w: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}, nil
	case "json":
		return &jsonPrinter{w: w}, nil
	}
	return nil, usagef("-o %q: use table or json", format)
}

// jsonPrinter writes each decision as received, one JSON object a line.
type jsonPrinter struct{ w io.Writer }

func (p *jsonPrinter) print(raw json.RawMessage, _ *decision.Decision) error {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := p.w.Write(b.Bytes())
	return err
}

func (p *jsonPrinter) flush() error { return nil }

// tablePrinter writes aligned columns, with a header before the first
// row. Column widths carry over from one flush to the next, so rows that
// --follow prints one at a time stay aligned with the backlog above them.
type tablePrinter struct {
	w      *tabwriter.Writer
	header bool
	rows   [][]string
	widths []int
}

var tableHeader = []string{"TIME", "LAYER", "VERDICT", "REASON", "SOURCE", "HOST:PORT", "SERVICEENTRY/STATUS", "DETAIL"}

func (p *tablePrinter) print(_ json.RawMessage, d *decision.Decision) error {
	if !p.header {
		p.header = true
		p.add(tableHeader)
	}
	p.add([]string{
		d.Time.In(displayLocation).Format("15:04:05.000"),
		layer(d),
		string(d.Verdict),
		string(d.Reason),
		source(d),
		hostPort(d),
		serviceEntryStatus(d),
		truncate(detail(d), maxDetail),
	})
	return nil
}

// add buffers one row, its cells made tab-free and never empty.
func (p *tablePrinter) add(cells []string) {
	row := make([]string, len(cells))
	for i, c := range cells {
		c = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, c)
		if c == "" {
			c = "-"
		}
		row[i] = c
	}
	p.rows = append(p.rows, row)
}

func (p *tablePrinter) flush() error {
	for _, row := range p.rows {
		for i, c := range row {
			if i == len(p.widths) {
				p.widths = append(p.widths, 0)
			}
			p.widths[i] = max(p.widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range p.rows {
		for i := range len(row) - 1 {
			row[i] += strings.Repeat(" ", p.widths[i]-utf8.RuneCountInString(row[i]))
		}
		if _, err := fmt.Fprintln(p.w, strings.Join(row, "\t")); err != nil {
			return err
		}
	}
	p.rows = p.rows[:0]
	return p.w.Flush()
}

// layer is the decision's layer, "via proxy" when it came through the
// explicit proxy.
func layer(d *decision.Decision) string {
	if d.Via != "" {
		return string(d.Layer) + " via " + d.Via
	}
	return string(d.Layer)
}

// source names the caller: its identity when known, else its address.
func source(d *decision.Decision) string {
	if d.Identity != "" {
		return d.Identity
	}
	if d.Source.IsValid() {
		return d.Source.Addr().String()
	}
	return ""
}

// hostPort is "host:port", the host alone without a port, or the
// destination address when there is no host.
func hostPort(d *decision.Decision) string {
	if d.Host == "" {
		return d.Destination
	}
	if d.Port == 0 {
		return d.Host
	}
	return net.JoinHostPort(d.Host, strconv.FormatUint(uint64(d.Port), 10))
}

// serviceEntryStatus is the matching ServiceEntry and the HTTP status,
// whichever are known.
func serviceEntryStatus(d *decision.Decision) string {
	var parts []string
	if d.ServiceEntry != "" {
		parts = append(parts, d.ServiceEntry)
	}
	if d.Status != 0 {
		parts = append(parts, strconv.Itoa(d.Status))
	}
	return strings.Join(parts, " ")
}

// detail says more: the detail text and a redirect's Location.
func detail(d *decision.Decision) string {
	var parts []string
	if d.Detail != "" {
		parts = append(parts, d.Detail)
	}
	if d.Location != "" {
		parts = append(parts, "location "+d.Location)
	}
	return strings.Join(parts, "; ")
}

// truncate shortens s to at most n characters, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
