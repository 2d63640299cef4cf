package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadEvents(t *testing.T) {
	tests := map[string]struct {
		in   string
		want []event
	}{
		"one":                  {"id: 1\nevent: decision\ndata: {}\n\n", []event{{ID: "1", Type: "decision", Data: "{}"}}},
		"default type":         {"data: x\n\n", []event{{Type: "message", Data: "x"}}},
		"crlf":                 {"id: 2\r\nevent: decision\r\ndata: y\r\n\r\n", []event{{ID: "2", Type: "decision", Data: "y"}}},
		"multi-line data":      {"data: a\ndata: b\ndata\n\n", []event{{Type: "message", Data: "a\nb\n"}}},
		"no space after colon": {"event:dropped\ndata:{\"dropped\":1}\n\n", []event{{Type: "dropped", Data: `{"dropped":1}`}}},
		"comments and empty events skipped": {": keepalive\n\n: another\nevent: decision\n\ndata: z\n\n",
			[]event{{Type: "message", Data: "z"}}},
		"id carries over": {"id: 7\ndata: a\n\ndata: b\n\n",
			[]event{{ID: "7", Type: "message", Data: "a"}, {ID: "7", Type: "message", Data: "b"}}},
		"unknown fields ignored":     {"retry: 100\nfoo: bar\ndata: q\n\n", []event{{Type: "message", Data: "q"}}},
		"unterminated event dropped": {"data: a\n\ndata: b", []event{{Type: "message", Data: "a"}}},
		"long line":                  {"data: " + strings.Repeat("x", 200000) + "\n\n", []event{{Type: "message", Data: strings.Repeat("x", 200000)}}},
		"empty":                      {"", nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []event
			err := readEvents(strings.NewReader(tc.in), func(e event) error {
				got = append(got, e)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestReadEventsStopsOnError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := readEvents(strings.NewReader("data: a\n\ndata: b\n\n"), func(event) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err %v after %d events", err, n)
	}
}
