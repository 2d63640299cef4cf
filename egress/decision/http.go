package decision

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// keepaliveInterval is how often the event stream sends a comment to keep
// idle connections (and proxies) open.
const keepaliveInterval = 15 * time.Second

// NewHandler serves the read-only decision API, all GET:
//
//	/api/v1/decisions         {"decisions":[...],"count":N}, newest first;
//	                          the ParseQuery parameters; 400 with a plain
//	                          text message on a bad parameter
//	/api/v1/decisions/stream  server-sent events, one per new decision
//	                          matching the query:
//	                          "id: <decision id>\nevent: decision\ndata: <json>\n\n";
//	                          backlog=N first sends up to N stored matching
//	                          decisions, oldest first; ": keepalive" every
//	                          15 s; "event: dropped\ndata: {\"dropped\":N}\n\n"
//	                          when the connection missed N decisions since
//	                          the previous such event because it fell behind.
//	                          Ends when the client goes away or the stream's
//	                          Run returns. 503 when stream is nil.
//	/api/v1/aggregates        Aggregates; top=N (default DefaultTop)
//	/api/v1/chains            {"chains":[...]}
func NewHandler(store *Store, stream *Stream) http.Handler {
	return newHandler(store, stream, keepaliveInterval, DefaultSubscriptionBuffer)
}

// newHandler is NewHandler with the event stream's keepalive interval and
// subscription buffer as parameters.
func newHandler(store *Store, stream *Stream, keepalive time.Duration, subBuffer int) http.Handler {
	h := &handler{store: store, stream: stream, keepalive: keepalive, subBuffer: subBuffer}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/decisions", h.decisions)
	mux.HandleFunc("GET /api/v1/decisions/stream", h.events)
	mux.HandleFunc("GET /api/v1/aggregates", h.aggregates)
	mux.HandleFunc("GET /api/v1/chains", h.chains)
	return mux
}

// handler serves NewHandler's endpoints.
type handler struct {
	store     *Store
	stream    *Stream
	keepalive time.Duration
	subBuffer int
}

// decisionsResponse is the body of /api/v1/decisions.
type decisionsResponse struct {
	Decisions []*Decision `json:"decisions"`
	Count     int         `json:"count"`
}

// chainsResponse is the body of /api/v1/chains.
type chainsResponse struct {
	Chains []ChainView `json:"chains"`
}

func (h *handler) decisions(w http.ResponseWriter, r *http.Request) {
	q, ok := parseRequest(w, r)
	if !ok {
		return
	}
	ds := h.store.Query(q)
	if ds == nil {
		ds = []*Decision{}
	}
	writeJSON(w, decisionsResponse{Decisions: ds, Count: len(ds)})
}

func (h *handler) aggregates(w http.ResponseWriter, r *http.Request) {
	q, ok := parseRequest(w, r)
	if !ok {
		return
	}
	top, ok := intParam(w, r, "top", DefaultTop)
	if !ok {
		return
	}
	writeJSON(w, h.store.Aggregate(q, top))
}

func (h *handler) chains(w http.ResponseWriter, r *http.Request) {
	q, ok := parseRequest(w, r)
	if !ok {
		return
	}
	writeJSON(w, chainsResponse{Chains: h.store.Chains(q)})
}

// parseRequest parses the request's query, answering 400 when it is bad.
func parseRequest(w http.ResponseWriter, r *http.Request) (Query, bool) {
	q, err := ParseQuery(r.URL.Query(), time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return Query{}, false
	}
	return q, true
}

// intParam reads a non-negative integer parameter, answering 400 when it
// is bad.
func intParam(w http.ResponseWriter, r *http.Request, name string, def int) (int, bool) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		http.Error(w, name+": "+strconv.Quote(s)+" is not a non-negative integer", http.StatusBadRequest)
		return 0, false
	}
	return n, true
}

// writeJSON answers 200 with v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	// An encoding error can only be a write error: the client is gone.
	_ = json.NewEncoder(w).Encode(v)
}
