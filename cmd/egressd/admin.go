package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/egressd/egressd/egress/dashboard"
)

// adminServer serves egressd's own endpoints: /metrics (Prometheus),
// /healthz (the process runs), /readyz (a first allowlist is loaded), the
// read-only /api/v1/ (decisions, aggregates, chains, suggestions,
// allowlist, health) and the dashboard at /.
type adminServer struct {
	address   string
	registry  *prometheus.Registry
	ready     func() bool
	api       http.Handler
	dashboard http.Handler
	// token, when set, is required (bearer token, or the dashboard's
	// cookie) for everything but the probes /healthz and /readyz.
	token string
	log   *zap.Logger
}

func (a *adminServer) Start(ctx context.Context) error {
	mux := http.NewServeMux()
	protected := http.NewServeMux()
	protected.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	if a.api != nil {
		protected.Handle("/api/v1/", a.api)
	}
	if a.dashboard != nil {
		protected.Handle("/", a.dashboard)
	}
	mux.Handle("/", dashboard.RequireToken(a.token, protected))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready() {
			http.Error(w, "no allowlist loaded yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", a.address)
	if err != nil {
		return fmt.Errorf("admin: listen on %s: %w", a.address, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	a.log.Info("serving admin", zap.String("address", ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("admin: %w", err)
	}
}
