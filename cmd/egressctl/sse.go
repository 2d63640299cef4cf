package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
)

// event is one Server-Sent Event.
type event struct {
	// ID is the last event ID the stream set, "" if none.
	ID string
	// Type is the event field; "message" when the event has none.
	Type string
	// Data is the event's data lines joined with "\n".
	Data string
}

// readEvents reads a text/event-stream from r and calls fn for each event,
// in order, until r ends (nil) or fn or the read fails. Comment lines
// (": keepalive") are skipped; an event is dispatched at a blank line,
// and only if it carried data, as the HTML standard says.
func readEvents(r io.Reader, fn func(event) error) error {
	br := bufio.NewReader(r)
	var (
		id, typ string
		data    []string
		hasData bool
	)
	for {
		line, err := br.ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			if errors.Is(err, io.EOF) {
				return nil // an unterminated event is discarded
			}
			return err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if hasData {
				t := typ
				if t == "" {
					t = "message"
				}
				if err := fn(event{ID: id, Type: t, Data: strings.Join(data, "\n")}); err != nil {
					return err
				}
			}
			typ, data, hasData = "", data[:0], false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			if !strings.ContainsRune(value, 0) {
				id = value
			}
		case "event":
			typ = value
		case "data":
			data = append(data, value)
			hasData = true
		}
	}
}
