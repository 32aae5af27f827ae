package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/go-co-op/gocron/v2"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bot/discord"
	"github.com/hordechat/hordechat/bot/matrix"
	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/openai"
	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/storage"
)

// App is one running hordechat: storage, the Horde client, housekeeping
// and the built-in HTTP server. Build it with newApp, then Run it.
type App struct {
	cfg     Config
	log     *slog.Logger
	store   *storage.Store
	horde   *hordeapi.Client
	bridge  *bridge.Service
	v1      *openai.Server
	engine  *bot.Engine      // nil when no chat platform is on
	discord *discord.Adapter // nil when Discord is off
	matrix  *matrix.Adapter  // nil when Matrix is off
	sched   gocron.Scheduler
	http    *http.Server
	started time.Time

	// onReady, when set, is called once the app serves, with the HTTP
	// address it listens on (nil when the listener is off).
	onReady func(net.Addr)
}

// hordeIdleConns is how many idle connections to the Horde are kept for
// reuse: the scheduler's polls in flight plus bursts of submits.
const hordeIdleConns = 64

// newApp opens everything Run needs. On error, whatever was opened is closed.
func newApp(ctx context.Context, cfg Config, log *slog.Logger) (_ *App, err error) {
	a := &App{cfg: cfg, log: log, started: time.Now()}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	a.store, err = storage.Open(ctx, cfg.Storage, log) // storage adds its own component
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	store := a.store
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "hordechat_storage_busy_retries_total",
		Help: "Writes retried because another connection held the SQLite database lock (see storage.busy_retry_for).",
	}, func() float64 { return float64(store.BusyRetries()) }))
	hordeMetrics, err := openai.NewHordeMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("register horde metrics: %w", err)
	}
	// Every Horde call goes to one host, and net/http keeps only 2 idle
	// connections per host by default: under load almost every submit and
	// poll opened a new (TLS) connection (load_test.go).
	hordeTransport := http.DefaultTransport.(*http.Transport).Clone()
	hordeTransport.MaxIdleConnsPerHost = hordeIdleConns
	a.horde, err = hordeapi.New(cfg.Horde, hordeapi.WithVersion(version()),
		hordeapi.WithHTTPClient(&http.Client{Timeout: cfg.Horde.Timeout, Transport: hordeMetrics.RoundTripper(hordeTransport)}))
	if err != nil {
		return nil, fmt.Errorf("create horde client: %w", err)
	}
	a.bridge, err = newBridge(cfg, a.store, a.horde, log)
	if err != nil {
		return nil, err
	}
	if cfg.Discord.Enabled() || cfg.Matrix.Enabled() {
		a.engine, err = bot.NewEngine(cfg.Chat, bot.Deps{Store: botStore{a.store}, Bridge: a.bridge, Keys: hordeKeys{a.horde}, Log: log})
		if err != nil {
			return nil, fmt.Errorf("create chat engine: %w", err)
		}
	}
	// Platforms join the engine before the bridge starts, so jobs resumed
	// after a restart find where to deliver.
	if cfg.Discord.Enabled() {
		a.discord, err = discord.New(cfg.Discord, a.engine, log)
		if err != nil {
			return nil, fmt.Errorf("create discord adapter: %w", err)
		}
		a.engine.AddPlatform(a.discord)
	}
	if cfg.Matrix.Enabled() {
		mcfg := cfg.Matrix
		if mcfg.SessionFile == "" {
			mcfg.SessionFile = filepath.Join(filepath.Dir(cfg.Storage.Path), "matrix-session.json")
		}
		a.matrix, err = matrix.New(mcfg, a.engine, log)
		if err != nil {
			return nil, fmt.Errorf("create matrix adapter: %w", err)
		}
		a.engine.AddPlatform(a.matrix)
	}
	a.v1, err = openai.New(cfg.OpenAI, openai.Deps{
		Bridge: a.bridge, Tokens: tokenStore{a.store}, Keys: a.horde, DefaultModel: cfg.Bridge.DefaultModel,
		Ready: a.ready, Registry: reg, Log: log, Version: version(),
	})
	if err != nil {
		return nil, fmt.Errorf("create /v1 endpoint: %w", err)
	}
	a.sched, err = newHousekeeping(a.store, cfg.Storage, log.With("component", "housekeeping"),
		housekeepingJob{"models", cfg.Bridge.ModelRefresh, a.bridge.RefreshModels})
	if err != nil {
		return nil, fmt.Errorf("schedule housekeeping: %w", err)
	}
	if cfg.HTTP.Listen != "" {
		// No ReadTimeout or WriteTimeout: /v1 holds requests open for as
		// long as a Horde job lives and sets per-request deadlines itself.
		a.http = &http.Server{
			Handler:           a.routes(),
			ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn),
		}
	}
	return a, nil
}

// newBridge builds the core. The Proxied-For identity key comes from the
// config or, by default, is derived from the storage key, so it is as
// stable as the database itself.
func newBridge(cfg Config, store *storage.Store, client *hordeapi.Client, log *slog.Logger) (*bridge.Service, error) {
	secret := []byte(cfg.Bridge.IdentitySecret)
	if len(secret) == 0 {
		secret = store.DeriveSecret("hordechat proxied-for identity")
	}
	svc, err := bridge.New(cfg.Bridge, bridge.Deps{Client: client, Store: bridgeStore{store}, IdentitySecret: secret, Log: log})
	if err != nil {
		return nil, fmt.Errorf("create bridge: %w", err)
	}
	return svc, nil
}

func (a *App) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", a.v1.Handler()) // /v1, the status page, /readyz, /metrics
	mux.HandleFunc("GET /healthz", a.healthz)
	if h := a.bridge.WebhookHandler(); h != nil {
		mux.Handle("POST "+bridge.WebhookPath, h)
	}
	return mux
}

// healthz answers 200 while the process serves and its database answers.
func (a *App) healthz(w http.ResponseWriter, r *http.Request) {
	status, code := "ok", http.StatusOK
	if err := a.store.Ping(r.Context()); err != nil {
		a.log.Warn("health check failed", "component", "http", "err", err)
		status, code = "database unavailable", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	snap := a.bridge.Models().Snapshot()
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{
		"status":         status,
		"version":        version(),
		"uptime_seconds": int64(time.Since(a.started).Seconds()),
		"models":         len(snap.Models),
		"models_stale":   snap.Stale,
		"jobs_in_flight": a.bridge.InFlight(),
	})
}

// Run serves until ctx ends, then shuts down in order: stop intake, stop
// housekeeping, close the database last.
func (a *App) Run(ctx context.Context) error {
	defer a.close()
	a.logPlatforms()

	var ln net.Listener
	serveErr := make(chan error, 1)
	if a.http != nil {
		var err error
		ln, err = net.Listen("tcp", a.cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("listen on http.listen %s: %w", a.cfg.HTTP.Listen, err)
		}
		go func() { serveErr <- a.http.Serve(ln) }()
	}
	a.sched.Start()
	if err := a.bridge.Start(ctx); err != nil {
		return fmt.Errorf("start bridge: %w", err)
	}
	// Messages accepted before a restart go first: before the platforms
	// take new ones, and after the bridge resumed their jobs.
	if a.engine != nil {
		if err := a.engine.Resume(ctx); err != nil {
			a.log.Error("could not resume the accepted messages; they stay for the next start", "err", err)
		}
	}
	platformCtx, stopPlatforms := context.WithCancel(ctx)
	defer stopPlatforms()
	platformErr := make(chan error, 1)
	platforms := 0
	if a.discord != nil {
		platforms++
		go func() { platformErr <- wrapErr("discord", a.discord.Run(platformCtx)) }()
	}
	if a.matrix != nil {
		platforms++
		go func() { platformErr <- wrapErr("matrix", a.matrix.Run(platformCtx)) }()
	}

	var addr net.Addr
	if ln != nil {
		addr = ln.Addr()
		a.log.Info("ready", "http", "http://"+addr.String(), "healthz", "http://"+addr.String()+"/healthz", "version", version())
	} else {
		a.log.Info("ready", "http", "off (set http.listen to serve)", "version", version())
	}
	if a.onReady != nil {
		a.onReady(addr)
	}

	var runErr error
	select {
	case <-ctx.Done():
		a.log.Info("shutting down", "reason", context.Cause(ctx))
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = fmt.Errorf("serve http: %w", err)
		}
	case err := <-platformErr:
		platforms--
		runErr = err
	}
	// Stop intake first: HTTP, then the gateways; then the chat engine;
	// the bridge keeps in-flight chat jobs journaled for the next start.
	err := a.shutdown(func() {
		stopPlatforms()
		for ; platforms > 0; platforms-- {
			if err := <-platformErr; err != nil {
				a.log.Warn("platform stopped with an error", "err", err)
			}
		}
		if a.engine != nil {
			a.engine.Close()
		}
	})
	return errors.Join(runErr, err)
}

// shutdown stops the HTTP server, runs stopIntake (the chat platforms),
// then closes the bridge and housekeeping; close() closes the database.
func (a *App) shutdown(stopIntake func()) error {
	var errs []error
	if a.http != nil {
		sctx, cancel := context.WithTimeout(context.Background(), a.cfg.HTTP.ShutdownTimeout)
		if err := a.http.Shutdown(sctx); err != nil {
			// Open /v1 jobs did not end in time: closing their connections
			// cancels them, which deletes them at the Horde.
			a.log.Warn("open requests did not finish in time; closing them", "err", err)
			_ = a.http.Close()
		}
		cancel()
	}
	stopIntake()
	a.bridge.Close() // chat jobs stay journaled for the next start
	if a.sched != nil {
		if err := a.sched.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("stop housekeeping: %w", err))
		}
		a.sched = nil
	}
	return errors.Join(errs...)
}

// close releases what newApp opened; the database goes last.
func (a *App) close() {
	if a.bridge != nil {
		a.bridge.Close()
	}
	if a.sched != nil {
		_ = a.sched.Shutdown()
		a.sched = nil
	}
	if a.store != nil {
		if err := a.store.Close(); err != nil {
			a.log.Error("close storage", "err", err)
		}
		a.store = nil
	}
}

// logPlatforms says which chat platforms are on, and for each one that is
// off, which key turns it on.
func (a *App) logPlatforms() {
	if a.cfg.Discord.Enabled() {
		a.log.Info("discord is on", "platform", "discord", "threads", a.cfg.Discord.Threads, "message_content_intent", a.cfg.Discord.MessageContent)
	} else {
		a.log.Info("discord is off", "platform", "discord", "turn_on", "set discord.token (env HORDECHAT_DISCORD__TOKEN or discord.token_file)")
	}
	if a.cfg.Matrix.Enabled() {
		a.log.Info("matrix is on", "platform", "matrix", "user_id", a.cfg.Matrix.UserID, "threads", a.cfg.Matrix.Threads, "end_to_end_encryption", a.cfg.Matrix.Encryption)
	} else {
		a.log.Info("matrix is off", "platform", "matrix", "turn_on", "set matrix.homeserver, matrix.user_id and matrix.access_token or matrix.password (env HORDECHAT_MATRIX__...)")
	}
	key := "anonymous (0000000000)"
	if a.cfg.Horde.APIKey != "" {
		key = "operator key (horde.api_key)"
	}
	passkey := "off (set horde.proxy_passkey so rate limits land on each user)"
	if a.cfg.Horde.ProxyPasskey != "" {
		passkey = "on"
	}
	a.log.Info("horde", "base_url", a.cfg.Horde.BaseURL, "default_key", key, "identity_forwarding", passkey, "client_agent", a.horde.ClientAgent())
}

// wrapErr names the platform an error came from; nil stays nil.
func wrapErr(platform string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", platform, err)
}

// newLogger builds the process logger from the [log] section.
func newLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.Level) // validated before
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
