// Command fakehorde runs the in-process fake AI Horde of package
// hordeapi/hordetest as a standalone HTTP server on a real clock, so that a
// person can point hordechat (or curl) at it:
//
//	go run ./cmd/fakehorde -listen 127.0.0.1:7001
//	curl -H 'apikey: <printed key>' http://127.0.0.1:7001/api/v2/find_user
//
// It seeds a few realistic text workers and one registered account whose key
// it prints on start. It stops gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// devKey is the API key of the seeded account. It only exists in this fake.
const devKey = "fakehorde-dev-key-0001"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "fakehorde:", err)
		os.Exit(1)
	}
}

// run serves the fake until ctx ends. ready, if set, gets the API base URL
// once the listener is up.
func run(ctx context.Context, args []string, logOut io.Writer, ready func(apiURL string)) error {
	fs := flag.NewFlagSet("fakehorde", flag.ContinueOnError)
	fs.SetOutput(logOut)
	listen := fs.String("listen", "127.0.0.1:7001", "address to listen on")
	passkey := fs.String("passkey", "", "proxy passkey that makes Proxied-For honoured (empty: never honoured)")
	apikey := fs.String("apikey", devKey, "API key of the seeded registered account")
	kudos := fs.Float64("kudos", 5000, "kudos of the seeded account")
	noLimits := fs.Bool("no-rate-limits", false, "disable the Horde's rate limits")
	verbose := fs.Bool("v", false, "log every request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level})).With("component", "fakehorde")

	workers := seedWorkers()
	h := hordetest.NewServer(hordetest.Options{
		Clock:             clockwork.NewRealClock(),
		Passkey:           *passkey,
		Workers:           workers,
		Users:             []hordetest.User{{APIKey: *apikey, Username: "dev", Kudos: *kudos}},
		DisableRateLimits: *noLimits,
		Seed:              uint64(time.Now().UnixNano()), // fresh request ids on every run
		Logger:            log,
	})
	defer func() { _ = h.Close() }()

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: logRequests(log, h.Handler()), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()

	apiURL := "http://" + l.Addr().String() + "/api"
	log.Info("fake horde listening", "url", apiURL, "apikey", *apikey, "kudos", *kudos,
		"workers", len(workers), "passkey_set", *passkey != "", "rate_limits", !*noLimits)
	if ready != nil {
		ready(apiURL)
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// seedWorkers are the default workers plus a bigger, slower one.
func seedWorkers() []hordetest.Worker {
	return append(hordetest.DefaultWorkers(), hordetest.Worker{
		Name: "fake-aphrodite-cydonia", Models: []string{"aphrodite/TheDrummer/Cydonia-22B-v1.2"},
		MaxLength: 512, MaxContextLength: 8192, TokensPerSecond: 6, Threads: 2, Trusted: true,
		BridgeAgent:       "AI Horde Worker~aphrodite~oai/kai:5:https://github.com/Haidra-Org/AI-Horde-Worker",
		RequestsFulfilled: 800,
	})
}

// statusRecorder remembers the status code for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// logRequests logs method, path and status at debug level; API keys and
// other headers are never logged.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status)
	})
}
