package matrix

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/hordechat/hordechat/bot"
)

// MaxMessageLength is the longest message part the adapter sends, in
// UTF-16 units (what bot.Split counts). A Matrix event may be at most
// 65,536 bytes; one UTF-16 unit is at most 3 UTF-8 bytes, so a part is at
// most 24,000 bytes of body. An edit carries it twice (the "* " fallback
// and m.new_content), 48,000 bytes, which leaves room for the JSON around
// it; when the HTML rendering would push an event over the limit, it is
// sent as plain text only.
const MaxMessageLength = 8000

// firstSyncFilter is an inline filter that keeps the first sync small.
const firstSyncFilter = `{"room":{"timeline":{"limit":1}}}`

// oldEventMargin: events older than the start minus this are not
// answered, whatever sync brings them (clock skew is allowed for).
const oldEventMargin = 10 * time.Minute

// maxEventBytes is the size above which formatted_body is dropped.
const maxEventBytes = 60000

// Option changes how the adapter is built (tests).
type Option func(*Adapter)

// WithHTTPClient sets the HTTP client used for the homeserver.
func WithHTTPClient(c *http.Client) Option { return func(a *Adapter) { a.httpClient = c } }

// WithSyncTimeout sets the long-poll timeout of /sync (default 30 s).
func WithSyncTimeout(d time.Duration) Option { return func(a *Adapter) { a.syncTimeout = d } }

// Adapter is the Matrix platform: a bot account that syncs, answers
// mentions, DMs and threads, and runs !commands.
type Adapter struct {
	cfg         Config
	engine      *bot.Engine
	log         *slog.Logger
	httpClient  *http.Client
	syncTimeout time.Duration
	keyWait     time.Duration
	retry       retry // the wait after a failed sync or start-up request

	// e2e is end-to-end encryption, nil when matrix.encryption is off.
	e2e e2ee

	cli   *mautrix.Client
	ready chan struct{}
	// loggedIn is closed once Run has a valid session; sends wait for it
	// (the bridge may deliver resumed answers before Run starts).
	loggedIn chan struct{}
	work     chan func(context.Context)
	server   string // the bot's homeserver name

	mu      sync.Mutex
	members map[id.RoomID]map[id.UserID]string           // joined members and names
	powers  map[id.RoomID]*event.PowerLevelsEventContent // power levels by room (cached)
	threads map[string]bool                              // room|root of threads the bot answers in
	mine    map[id.EventID]bool                          // events the bot sent (bounded)
	seen    map[id.EventID]bool                          // events already handled (bounded)
	edits   map[string]int                               // progress edits per message
	dms     map[id.UserID]id.RoomID                      // each user's direct chat with the bot (private.go)
	// toldEncrypted: rooms told this run that encrypted messages are
	// unreadable.
	toldEncrypted map[id.RoomID]bool
	startedAt     time.Time
}

var (
	_ bot.Platform   = (*Adapter)(nil)
	_ bot.Editor     = (*Adapter)(nil)
	_ bot.Typer      = (*Adapter)(nil)
	_ bot.Redactor   = (*Adapter)(nil)
	_ bot.FileSender = (*Adapter)(nil)
)

// New builds the adapter; Run connects it. Add it to the engine with
// engine.AddPlatform before the bridge starts.
func New(cfg Config, engine *bot.Engine, log *slog.Logger, opts ...Option) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, errors.New("matrix: homeserver and a credential are required")
	}
	if engine == nil {
		return nil, errors.New("matrix: engine is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{
		cfg: cfg, engine: engine, log: log.With("component", "matrix"),
		syncTimeout: 30 * time.Second,
		keyWait:     10 * time.Second,
		retry:       defaultRetry(),
		ready:       make(chan struct{}),
		loggedIn:    make(chan struct{}),
		work:        make(chan func(context.Context), 256),
		members:     map[id.RoomID]map[id.UserID]string{},
		powers:      map[id.RoomID]*event.PowerLevelsEventContent{},
		threads:     map[string]bool{},
		mine:        map[id.EventID]bool{},
		seen:        map[id.EventID]bool{},
		edits:       map[string]int{},
		dms:         map[id.UserID]id.RoomID{},

		toldEncrypted: map[id.RoomID]bool{},
	}
	for _, o := range opts {
		o(a)
	}
	_, a.server, _ = strings.Cut(cfg.UserID, ":")
	cli, err := mautrix.NewClient(cfg.Homeserver, id.UserID(cfg.UserID), cfg.AccessToken)
	if err != nil {
		return nil, fmt.Errorf("matrix client: %w", err)
	}
	if a.httpClient != nil {
		cli.Client = a.httpClient
	}
	cli.Log = zerolog.New(zlogWriter{a.log}).With().Timestamp().Logger().Level(zerolog.InfoLevel)
	cli.UserAgent = "hordechat"
	a.cli = cli
	// A kept session is usable at once: the bridge may deliver resumed
	// answers before Run has synced.
	if cfg.AccessToken == "" {
		if s, err := a.loadSession(); err == nil && s.Homeserver == cfg.Homeserver && s.UserID == cfg.UserID {
			cli.AccessToken, cli.DeviceID = s.AccessToken, id.DeviceID(s.DeviceID)
		}
	}
	return a, nil
}

// Name is "matrix".
func (a *Adapter) Name() string { return "matrix" }

// MaxMessageLength is MaxMessageLength (see there for why).
func (a *Adapter) MaxMessageLength() int { return MaxMessageLength }

// Ready is closed once the first sync is done: from then on, new messages
// are answered.
func (a *Adapter) Ready() <-chan struct{} { return a.ready }

// Run logs in if needed, then syncs until ctx ends. Events from before
// the start (the first sync's backlog) are not answered. An unreachable
// or failing homeserver is waited for, at start and after, for as long
// as it takes (see WithSyncRetry); only a refused credential ends Run
// with an error.
func (a *Adapter) Run(ctx context.Context) error {
	if err := a.loginRetrying(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	if a.cfg.Encryption {
		// Setting up encryption uploads the device's keys: a homeserver
		// that fails now is waited for like one that fails the login.
		var e e2ee
		err := a.retryAtStart(ctx, "matrix encryption set-up failed; retrying", func(ctx context.Context) (err error) {
			e, err = a.newE2EE(ctx)
			return err
		})
		if err != nil || e == nil {
			return err // nil when ctx ended
		}
		a.e2e = e
		defer func() {
			if err := e.close(); err != nil {
				a.log.Warn("close matrix crypto database", "err", err)
			}
		}()
	}
	close(a.loggedIn)
	a.mu.Lock()
	a.startedAt = time.Now()
	a.mu.Unlock()
	var wg sync.WaitGroup
	for range a.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case job := <-a.work:
					a.runJob(context.WithoutCancel(ctx), job)
				}
			}
		}()
	}
	defer wg.Wait()
	since := ""
	failures := 0 // failed syncs in a row
	var failingSince time.Time
	for {
		timeout, filter := int(a.syncTimeout/time.Millisecond), ""
		if since == "" {
			// The first sync is only read for invites and rooms: ask for
			// no backlog worth the name.
			timeout, filter = 0, firstSyncFilter
		}
		resp, err := a.cli.SyncRequest(ctx, timeout, since, filter, false, event.PresenceOnline)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, mautrix.MUnknownToken) {
				return fmt.Errorf("matrix sync: the access token was revoked; set a new matrix.access_token or delete %s: %w", a.cfg.SessionFile, err)
			}
			// Anything else is the homeserver or the network: retry for
			// as long as it takes, backing off.
			failures++
			if failures == 1 {
				failingSince = a.retry.clock.Now()
			}
			wait := a.retry.delay(failures, syncRetryAfter(err))
			a.log.Warn("matrix sync failed; retrying", "homeserver", a.cfg.Homeserver, "err", err, "failures", failures, "retry_in", wait)
			if !a.retry.wait(ctx, wait) {
				return nil
			}
			continue
		}
		if failures > 0 {
			a.log.Info("matrix sync recovered", "failures", failures, "failing_for", a.retry.clock.Since(failingSince).Round(time.Second))
			failures = 0
		}
		if a.e2e != nil {
			a.e2e.processSync(ctx, resp, since)
		}
		a.handleSync(ctx, resp, since == "")
		if since == "" {
			close(a.ready)
			a.log.Info("matrix connected", "user_id", a.cfg.UserID)
		}
		since = resp.NextBatch
	}
}

// waitLogin returns once Run has logged in, or when ctx ends.
func (a *Adapter) waitLogin(ctx context.Context) error {
	select {
	case <-a.loggedIn:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("matrix: not logged in yet: %w", ctx.Err())
	}
}

// enqueue hands work to the workers; the sync loop never runs handlers.
func (a *Adapter) enqueue(ctx context.Context, job func(context.Context)) {
	select {
	case a.work <- job:
	case <-ctx.Done():
	}
}

// loginRetrying logs in, retrying while the homeserver is unreachable
// or failing (a bot started before its homeserver waits for it); a
// refused credential is returned at once. It returns nil when ctx ends.
func (a *Adapter) loginRetrying(ctx context.Context) error {
	return a.retryAtStart(ctx, "matrix homeserver unavailable at start; retrying", a.login)
}

// retryAtStart runs step until it succeeds, retrying with backoff while
// the homeserver is unreachable or failing, and logging msg each time; a
// lasting error is returned at once. It returns nil when ctx ends.
func (a *Adapter) retryAtStart(ctx context.Context, msg string, step func(context.Context) error) error {
	for failures := 1; ; failures++ {
		err := step(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		retryAfter, ok := transient(err)
		if !ok {
			return err
		}
		wait := a.retry.delay(failures, retryAfter)
		a.log.Warn(msg, "homeserver", a.cfg.Homeserver, "err", err, "failures", failures, "retry_in", wait,
			"check", "is the homeserver up and is matrix.homeserver its client-server API URL?")
		if !a.retry.wait(ctx, wait) {
			return nil
		}
	}
}

// session is what SessionFile keeps.
type session struct {
	Homeserver  string `json:"homeserver"`
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id"`
	AccessToken string `json:"access_token"`
}

// login uses the access token, the kept session, or the password.
func (a *Adapter) login(ctx context.Context) error {
	if a.cfg.AccessToken != "" {
		return a.whoami(ctx)
	}
	if a.cli.AccessToken != "" { // from SessionFile
		err := a.whoami(ctx)
		if err == nil || !errors.Is(err, mautrix.MUnknownToken) {
			return err
		}
		a.log.Warn("kept matrix session is no longer valid; logging in again")
		a.cli.AccessToken = ""
	}
	resp, err := a.cli.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: a.cfg.UserID},
		Password:                 a.cfg.Password,
		DeviceID:                 a.cli.DeviceID,
		InitialDeviceDisplayName: a.cfg.DeviceName,
		StoreCredentials:         true,
	})
	if err != nil {
		return fmt.Errorf("matrix login as %s: %w", a.cfg.UserID, err)
	}
	if a.cfg.SessionFile == "" {
		a.log.Warn("matrix.session_file is not set: the login is not kept and a new device is made on every start")
		return nil
	}
	return a.saveSession(session{Homeserver: a.cfg.Homeserver, UserID: resp.UserID.String(), DeviceID: resp.DeviceID.String(), AccessToken: resp.AccessToken})
}

func (a *Adapter) whoami(ctx context.Context) error {
	who, err := a.cli.Whoami(ctx)
	if err != nil {
		return fmt.Errorf("matrix whoami: %w", err)
	}
	if who.UserID.String() != a.cfg.UserID {
		return fmt.Errorf("matrix: the access token belongs to %s, not matrix.user_id %s", who.UserID, a.cfg.UserID)
	}
	a.cli.DeviceID = who.DeviceID
	return nil
}

func (a *Adapter) loadSession() (session, error) {
	var s session
	if a.cfg.SessionFile == "" {
		return s, os.ErrNotExist
	}
	raw, err := os.ReadFile(a.cfg.SessionFile)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(raw, &s)
}

func (a *Adapter) saveSession(s session) error {
	raw, _ := json.MarshalIndent(s, "", "  ")
	if err := os.MkdirAll(filepath.Dir(a.cfg.SessionFile), 0o700); err != nil {
		return fmt.Errorf("keep matrix session: %w", err)
	}
	tmp := a.cfg.SessionFile + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("keep matrix session: %w", err)
	}
	if err := os.Rename(tmp, a.cfg.SessionFile); err != nil {
		return fmt.Errorf("keep matrix session: %w", err)
	}
	return nil
}

// txnID turns an Outgoing key into a transaction id; the homeserver
// returns the first event again for a repeated one, so a redelivery does
// not post twice.
func txnID(key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key))
	return "hc" + hex.EncodeToString(sum[:16])
}

// remember keeps a bounded set of event ids.
func remember(m map[id.EventID]bool, e id.EventID) {
	if len(m) >= 10000 {
		clear(m)
	}
	m[e] = true
}

// zlogWriter turns mautrix's zerolog JSON lines into slog records.
type zlogWriter struct{ log *slog.Logger }

func (w zlogWriter) Write(p []byte) (int, error) {
	var fields map[string]any
	if err := json.Unmarshal(p, &fields); err != nil {
		w.log.Info("mautrix", "line", strings.TrimSpace(string(p)))
		return len(p), nil
	}
	level := slog.LevelInfo
	switch fields["level"] {
	case "debug", "trace":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error", "fatal", "panic":
		level = slog.LevelError
	}
	msg, _ := fields["message"].(string)
	delete(fields, "level")
	delete(fields, "message")
	delete(fields, "time")
	attrs := make([]any, 0, 2*len(fields)+2)
	attrs = append(attrs, "mautrix_msg", msg)
	for k, v := range fields {
		attrs = append(attrs, k, v)
	}
	w.log.Log(context.Background(), level, "mautrix", attrs...)
	return len(p), nil
}

// runJob runs one queued event handler. A panic in it is logged and the
// worker goes on: one odd event must not end the bot for every room.
func (a *Adapter) runJob(ctx context.Context, job func(context.Context)) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("internal error handling a Matrix event; the bot goes on", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	job(ctx)
}
