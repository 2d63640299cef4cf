package decision

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// events serves /api/v1/decisions/stream as server-sent events.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	if h.stream == nil {
		http.Error(w, "no decision stream", http.StatusServiceUnavailable)
		return
	}
	q, ok := parseRequest(w, r)
	if !ok {
		return
	}
	backlog, ok := intParam(w, r, "backlog", 0)
	if !ok {
		return
	}
	m := q.compile()

	// Subscribe before reading the backlog, so nothing falls in between;
	// what both deliver is sent once, by ID.
	sub := h.stream.Subscribe(h.subBuffer)
	defer sub.Close()

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}

	var sent uint64 // highest ID sent from the backlog
	if backlog > 0 {
		bq := q
		bq.Limit = backlog
		for _, d := range slices.Backward(h.store.Query(bq)) {
			if writeEvent(w, d) != nil || rc.Flush() != nil {
				return
			}
			sent = max(sent, d.ID)
		}
	}

	tick := time.NewTicker(h.keepalive)
	defer tick.Stop()
	var reported uint64 // drops already announced
	for {
		var err error
		wrote := false
		select {
		case <-r.Context().Done():
			return
		case d, open := <-sub.C():
			if !open {
				return
			}
			if d.ID > sent && m.match(d) {
				err, wrote = writeEvent(w, d), true
			}
		case <-tick.C:
			_, err = io.WriteString(w, ": keepalive\n\n")
			wrote = true
		}
		if n := sub.Dropped(); n > reported && err == nil {
			_, err = fmt.Fprintf(w, "event: dropped\ndata: {\"dropped\":%d}\n\n", n-reported)
			reported, wrote = n, true
		}
		if err != nil {
			return
		}
		if wrote && rc.Flush() != nil {
			return
		}
	}
}

// writeEvent writes d as one "decision" event.
func writeEvent(w io.Writer, d *Decision) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "id: %d\nevent: decision\ndata: %s\n\n", d.ID, data)
	return err
}
