// Package webserver runs a daemon's HTTP surface the way Prometheus
// exporters do: listen addresses and TLS/basic-auth web config handled by
// prometheus/exporter-toolkit, graceful shutdown when the context ends.
package webserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

// Flags are the web flags of a daemon served by net/http, embedded into its
// kong struct. The binary passes its own default listen address as the kong
// variable web_listen_address (cmdline.Parse's vars).
type Flags struct {
	ListenAddress []string `name:"web.listen-address" default:"${web_listen_address}" sep:"," help:"Addresses to listen on (host:port; repeat or comma-separate for several; port 0 picks a free one)."`
	ConfigFile    string   `name:"web.config.file" type:"existingfile" help:"Prometheus exporter-toolkit web config file for TLS and basic auth."`
	EnablePprof   bool     `name:"web.enable-pprof" help:"Serve Go profiling endpoints under /debug/pprof/."`
}

// Listen binds the addresses of f for h, adding the profiling endpoints
// when --web.enable-pprof is set.
func (f Flags) Listen(h http.Handler, log *slog.Logger) (*Server, error) {
	if f.EnablePprof {
		h = WithPprof(h)
	}
	return Listen(Config{ListenAddresses: f.ListenAddress, WebConfigFile: f.ConfigFile}, h, log)
}

// Config says where and how to serve.
type Config struct {
	ListenAddresses []string // --web.listen-address, repeatable
	WebConfigFile   string   // --web.config.file; "" = plain HTTP, no auth
	ShutdownTimeout time.Duration
}

// Server is a bound, not yet serving, HTTP server.
type Server struct {
	cfg       Config
	listeners []net.Listener
	srv       *http.Server
	log       *slog.Logger
}

// Listen validates the web config and binds every address, so that a port
// in use is reported before anything starts.
func Listen(cfg Config, h http.Handler, log *slog.Logger) (*Server, error) {
	if len(cfg.ListenAddresses) == 0 {
		return nil, errors.New("no listen address; set --web.listen-address")
	}
	if cfg.WebConfigFile != "" {
		if err := web.Validate(cfg.WebConfigFile); err != nil {
			return nil, fmt.Errorf("cannot load --web.config.file=%q: %w", cfg.WebConfigFile, err)
		}
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	s := &Server{cfg: cfg, log: log, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
	for _, a := range cfg.ListenAddresses {
		ln, err := Bind(a)
		if err != nil {
			s.closeListeners()
			return nil, err
		}
		s.listeners = append(s.listeners, ln)
	}
	return s, nil
}

// Bind listens on one TCP address, with the error every daemon gives for a
// bad or busy --web.listen-address. The simulator, which serves with
// fasthttp rather than net/http, binds through it too.
func Bind(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on --web.listen-address=%q: %w", addr, err)
	}
	return ln, nil
}

func (s *Server) closeListeners() {
	for _, ln := range s.listeners {
		ln.Close()
	}
}

// Addrs returns the bound addresses (useful with port 0).
func (s *Server) Addrs() []string {
	out := make([]string, len(s.listeners))
	for i, ln := range s.listeners {
		out[i] = ln.Addr().String()
	}
	return out
}

// Serve serves until ctx ends, then shuts down gracefully: requests in
// progress (a long scrape) get ShutdownTimeout to finish.
func (s *Server) Serve(ctx context.Context) error {
	cf := s.cfg.WebConfigFile
	systemd := false
	addrs := s.cfg.ListenAddresses
	flags := &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemd, WebConfigFile: &cf}
	errc := make(chan error, 1)
	go func() { errc <- web.ServeMultiple(s.listeners, s.srv, flags, s.log) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
		return fmt.Errorf("cannot shut down the web server gracefully: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// WithPprof adds Go's profiling endpoints under /debug/pprof/ to h.
func WithPprof(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}

// AcceptsGzip reports whether an Accept-Encoding header admits gzip
// (present and not weighted q=0).
func AcceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		enc, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if q, err := strconv.ParseFloat(v, 64); err == nil && q == 0 {
				return false
			}
		}
		return true
	}
	return false
}

// CountingWriter counts the bytes written through it.
type CountingWriter struct {
	W io.Writer
	N int64
}

func (c *CountingWriter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	return n, err
}
