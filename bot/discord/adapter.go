package discord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bot"
)

// Name is the platform name: conversation ids start with "discord:".
const Name = "discord"

// MaxMessageLength is Discord's limit on a message's content.
const MaxMessageLength = 2000

// InvitePermissions are the permissions the bot asks for in its invite
// link: View Channel, Send Messages, Send Messages in Threads, Create
// Public Threads, Read Message History, Attach Files and Embed Links.
const InvitePermissions int64 = discordgo.PermissionViewChannel | discordgo.PermissionSendMessages |
	discordgo.PermissionSendMessagesInThreads | discordgo.PermissionCreatePublicThreads |
	discordgo.PermissionReadMessageHistory | discordgo.PermissionAttachFiles | discordgo.PermissionEmbedLinks

// InviteURL is the link that adds the bot (with its slash commands) to a
// server.
func InviteURL(applicationID string) string {
	q := url.Values{}
	q.Set("client_id", applicationID)
	q.Set("scope", "bot applications.commands")
	q.Set("permissions", strconv.FormatInt(InvitePermissions, 10))
	return "https://discord.com/oauth2/authorize?" + q.Encode()
}

// The adapter states what it can do.
var (
	_ bot.Platform   = (*Adapter)(nil)
	_ bot.Editor     = (*Adapter)(nil)
	_ bot.Typer      = (*Adapter)(nil)
	_ bot.Redactor   = (*Adapter)(nil)
	_ bot.FileSender = (*Adapter)(nil)
)

// Adapter connects one bot.Engine to Discord: it turns gateway events into
// engine calls and implements bot.Platform for the answers.
//
// New does not register the adapter with the engine: call
// engine.AddPlatform(adapter) yourself, before the bridge starts, so that
// answers of jobs resumed from the journal find it. Send and the other
// bot.Platform methods only use the REST API, so they work before Run
// (resumed jobs) and after it (jobs finishing during shutdown).
type Adapter struct {
	cfg    Config
	engine *bot.Engine
	log    *slog.Logger
	clock  clockwork.Clock
	s      *discordgo.Session
	ready  chan struct{}

	botID atomic.Pointer[string]
	appID atomic.Pointer[string]
	run   atomic.Bool
	base  context.Context // for event handlers: outlives Run's ctx until they are drained

	mu       sync.Mutex
	ix       map[string]*ixState // by interaction token
	replaced map[string]string   // expired interaction message id -> channel message posted instead
	threads  map[string]string   // starter message id -> channel its answers go to
	names    map[string]string   // starter message id -> name for its thread
	opening  keyLocks            // by starter message: each thread is opened once

	qmu    sync.Mutex
	queues map[string][]func()
	closed bool
	wg     sync.WaitGroup
}

// Option changes how New builds the adapter.
type Option func(*options)

type options struct {
	clock     clockwork.Clock
	transport http.RoundTripper
}

// WithClock sets the clock that decides when interaction tokens expire
// (tests pass the fake Discord's clock).
func WithClock(c clockwork.Clock) Option { return func(o *options) { o.clock = c } }

// WithTransport sets the HTTP transport REST calls go through after the
// base URL rewrite; nil means a transport like http.DefaultTransport that
// keeps more idle connections to the one REST host.
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// New builds the adapter without connecting. See Adapter for how to wire
// it.
func New(cfg Config, engine *bot.Engine, log *slog.Logger, opts ...Option) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		return nil, errors.New("discord.token: required to run the Discord adapter")
	}
	if engine == nil {
		return nil, errors.New("discord: an engine is required")
	}
	o := options{clock: clockwork.NewRealClock()}
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "discord")
	bridgeLogs(log)
	rt, err := newRewriteTransport(cfg.APIBaseURL, o.transport)
	if err != nil {
		return nil, err
	}
	s, err := discordgo.New("Bot " + cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("discord: new session: %w", err)
	}
	s.Client = &http.Client{Transport: rt, Timeout: 30 * time.Second}
	s.Identify.Intents = intents(cfg)
	s.ShardID, s.ShardCount = cfg.ShardID, cfg.ShardCount
	s.LogLevel = discordgo.LogWarning
	// Handlers run in gateway order; each one only queues work, see
	// enqueue, so a slow REST call never holds up the gateway.
	s.SyncEvents = true
	a := &Adapter{
		cfg: cfg, engine: engine, log: log, clock: o.clock, s: s, ready: make(chan struct{}),
		base:     context.Background(),
		ix:       map[string]*ixState{},
		replaced: map[string]string{},
		threads:  map[string]string{},
		names:    map[string]string{},
		queues:   map[string][]func(){},
	}
	s.AddHandler(a.onReady)
	s.AddHandler(a.onMessage)
	s.AddHandler(a.onInteraction)
	return a, nil
}

func intents(cfg Config) discordgo.Intent {
	i := discordgo.IntentGuilds | discordgo.IntentGuildMessages | discordgo.IntentDirectMessages
	if cfg.MessageContent {
		i |= discordgo.IntentMessageContent
	}
	return i
}

// Name implements bot.Platform.
func (a *Adapter) Name() string { return Name }

// MaxMessageLength implements bot.Platform.
func (a *Adapter) MaxMessageLength() int { return MaxMessageLength }

// Ready is closed once Run has connected and registered the commands.
func (a *Adapter) Ready() <-chan struct{} { return a.ready }

// Run connects to the gateway, registers the slash commands (shard 0
// only), and handles events until ctx ends; then it closes the gateway and
// waits for the events being handled. It can be called once.
func (a *Adapter) Run(ctx context.Context) error {
	if !a.run.CompareAndSwap(false, true) {
		return errors.New("discord: Run called twice")
	}
	gb, err := a.s.GatewayBot(discordgo.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("discord: get gateway (check discord.token): %w", scrub(err))
	}
	a.log.Info("gateway found", "url", gb.URL, "recommended_shards", gb.Shards, "shard_id", a.cfg.ShardID, "shard_count", a.cfg.ShardCount,
		"session_starts_left", gb.SessionStartLimit.Remaining)
	if gb.Shards > a.cfg.ShardCount {
		a.log.Warn("discord recommends more shards", "recommended_shards", gb.Shards, "shard_count", a.cfg.ShardCount)
	}
	if err := a.s.Open(); err != nil {
		return openError(err)
	}
	defer a.shutdown()
	app := a.application()
	if a.cfg.ShardID == 0 {
		if err := a.registerCommands(ctx, app); err != nil {
			// Mentions and DMs still work; slash commands keep their last
			// registered form.
			a.log.Error("register slash commands", "err", err)
		}
	}
	a.log.Info("invite the bot", "url", InviteURL(app))
	if !a.cfg.MessageContent {
		a.log.Info("message content intent off: mentions, replies that ping the bot, DMs and slash commands work; in the bot's threads people must mention it")
	}
	close(a.ready)
	<-ctx.Done()
	return nil
}

// openError explains the gateway's refusals that configuration can fix.
func openError(err error) error {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case 4014:
			return fmt.Errorf("discord: open gateway: the Message Content intent is not enabled for this bot: enable it in the developer portal (Bot, Privileged Gateway Intents) or set discord.message_content = false: %w", err)
		case 4004:
			return fmt.Errorf("discord: open gateway: discord.token was rejected: %w", err)
		case 4010, 4011:
			return fmt.Errorf("discord: open gateway: check discord.shard_id and discord.shard_count: %w", err)
		}
	}
	return fmt.Errorf("discord: open gateway: %w", scrub(err))
}

// shutdown closes the gateway and waits for queued events.
func (a *Adapter) shutdown() {
	a.qmu.Lock()
	a.closed = true
	a.qmu.Unlock()
	if err := a.s.Close(); err != nil {
		a.log.Warn("close gateway", "err", err)
	}
	a.wg.Wait()
}

func (a *Adapter) onReady(_ *discordgo.Session, r *discordgo.Ready) {
	if r.User != nil {
		id := r.User.ID
		a.botID.Store(&id)
	}
	if r.Application != nil && r.Application.ID != "" {
		id := r.Application.ID
		a.appID.Store(&id)
	}
	a.log.Info("connected", "bot_user", a.bot(), "guilds", len(r.Guilds))
}

// bot is the bot's user id ("" before READY).
func (a *Adapter) bot() string {
	if p := a.botID.Load(); p != nil {
		return *p
	}
	return ""
}

// application is the application id; bots made since 2019 share it with
// the bot user.
func (a *Adapter) application() string {
	if p := a.appID.Load(); p != nil {
		return *p
	}
	return a.bot()
}

// enqueue runs f after the earlier work with the same key: messages of one
// channel are handled in gateway order, interactions each on their own.
func (a *Adapter) enqueue(key string, f func()) {
	a.qmu.Lock()
	defer a.qmu.Unlock()
	if a.closed {
		return
	}
	a.wg.Add(1)
	if q, ok := a.queues[key]; ok {
		a.queues[key] = append(q, f)
		return
	}
	a.queues[key] = []func(){f}
	go a.drain(key)
}

func (a *Adapter) drain(key string) {
	for {
		a.qmu.Lock()
		q := a.queues[key]
		if len(q) == 0 {
			delete(a.queues, key)
			a.qmu.Unlock()
			return
		}
		f := q[0]
		a.queues[key] = q[1:]
		a.qmu.Unlock()
		a.runEvent(key, f)
		a.wg.Done()
	}
}

// runEvent runs one queued event handler. A panic in it is logged and the
// queue goes on: one odd event must not end the bot for every server.
func (a *Adapter) runEvent(key string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("internal error handling a Discord event; the bot goes on", "queue", key, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	f()
}

// opCtx bounds one handled event; it does not end with Run's ctx, so an
// event being handled at shutdown still gets its answer out.
func (a *Adapter) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(a.base, 2*time.Minute)
}

// discordgo logs through a package variable; it is set once and forwards
// to the logger of the adapter made last.
var (
	dgLogOnce sync.Once
	dgLog     atomic.Pointer[slog.Logger]
)

func bridgeLogs(log *slog.Logger) {
	dgLog.Store(log.With("source", "discordgo"))
	dgLogOnce.Do(func() {
		discordgo.Logger = func(level, _ int, format string, a ...any) {
			l := dgLog.Load()
			msg := fmt.Sprintf(format, a...)
			switch level {
			case discordgo.LogError:
				l.Error("discordgo", "detail", msg)
			case discordgo.LogWarning:
				l.Warn("discordgo", "detail", msg)
			case discordgo.LogInformational:
				l.Info("discordgo", "detail", msg)
			default:
				l.Debug("discordgo", "detail", msg)
			}
		}
	})
}
