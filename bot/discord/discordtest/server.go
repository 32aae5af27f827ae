package discordtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
	"github.com/jonboulle/clockwork"
)

// Defaults used when Options leave a field empty.
const (
	DefaultToken         = "fake-bot-token"
	DefaultApplicationID = "1300000000000000001"
	DefaultBotUsername   = "hordechat"
	// DefaultHeartbeatInterval is huge so that no test depends on
	// heartbeats; discordgo still sends one right after connecting.
	DefaultHeartbeatInterval = time.Hour
	// DefaultNonceWindow is how long an enforced nonce is remembered.
	// Discord documents "the past few minutes".
	DefaultNonceWindow = 5 * time.Minute
)

// DefaultStart is when the default fake clock starts.
var DefaultStart = time.Date(2026, time.January, 5, 12, 0, 0, 0, time.UTC)

// PrivilegedIntents are the intents a bot must enable in the developer
// portal before it may request them.
const PrivilegedIntents = discordgo.IntentGuildMembers | discordgo.IntentGuildPresences | discordgo.IntentMessageContent

// Interaction limits, in time of the fake clock.
const (
	// InteractionCallbackWindow is how long after dispatch the first
	// callback is accepted.
	InteractionCallbackWindow = 3 * time.Second
	// InteractionTokenLifetime is how long the interaction token works on
	// the webhook endpoints.
	InteractionTokenLifetime = 15 * time.Minute
)

// Options configure a fake Discord. The zero value is usable.
type Options struct {
	// Token is the bot token (without "Bot "); DefaultToken when empty.
	Token string
	// ApplicationID is the application's id; DefaultApplicationID when
	// empty. The bot user has the same id unless BotUserID is set, as for
	// every application created since 2019.
	ApplicationID string
	// BotUserID and BotUsername describe the bot user.
	BotUserID   string
	BotUsername string
	// DenyPrivilegedIntents lists privileged intents that are NOT enabled
	// in the developer portal: an IDENTIFY asking for one is closed with
	// 4014 "Disallowed intent(s).". By default all three are enabled.
	DenyPrivilegedIntents discordgo.Intent
	// Clock drives interaction expiry, nonces, timestamps and ids; nil
	// means a clockwork.FakeClock at DefaultStart.
	Clock clockwork.Clock
	// HeartbeatInterval is sent in HELLO; 0 means DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// NonceWindow is how long enforce_nonce de-duplicates; 0 means
	// DefaultNonceWindow.
	NonceWindow time.Duration
	// RateLimitLimit is the X-RateLimit-Limit sent on every response
	// (Remaining is always one less, so discordgo never waits); 0 means 5.
	RateLimitLimit int
}

// Option changes Options; see New.
type Option func(*Options)

// WithToken sets the bot token the fake accepts.
func WithToken(token string) Option { return func(o *Options) { o.Token = token } }

// WithApplicationID sets the application id.
func WithApplicationID(id string) Option { return func(o *Options) { o.ApplicationID = id } }

// WithBotUser sets the bot user's id and username.
func WithBotUser(id, username string) Option {
	return func(o *Options) { o.BotUserID, o.BotUsername = id, username }
}

// WithoutMessageContentIntent makes the MESSAGE_CONTENT intent not granted:
// requesting it closes the gateway with 4014.
func WithoutMessageContentIntent() Option {
	return func(o *Options) { o.DenyPrivilegedIntents |= discordgo.IntentMessageContent }
}

// WithDeniedIntents adds privileged intents that are not granted.
func WithDeniedIntents(i discordgo.Intent) Option {
	return func(o *Options) { o.DenyPrivilegedIntents |= i }
}

// WithClock sets the clock.
func WithClock(c clockwork.Clock) Option { return func(o *Options) { o.Clock = c } }

// WithHeartbeatInterval sets the interval announced in HELLO.
func WithHeartbeatInterval(d time.Duration) Option {
	return func(o *Options) { o.HeartbeatInterval = d }
}

// WithOptions replaces all options at once.
func WithOptions(opts Options) Option { return func(o *Options) { *o = opts } }

// Server is a fake Discord: REST API v9/v10 and the gateway. All methods are
// safe for concurrent use.
type Server struct {
	// URL is the base URL (http://127.0.0.1:port) when started by New;
	// with NewServer it is empty unless the caller sets it before serving,
	// and the gateway URL is then derived from each request's Host.
	URL string

	opts     Options
	clock    clockwork.Clock
	fake     *clockwork.FakeClock
	tb       testing.TB
	ts       *httptest.Server
	upgrader websocket.Upgrader
	faults   faultSet

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every state change
	closed  bool
	idSeq   uint64
	bot     *discordgo.User

	users        map[string]*discordgo.User
	guilds       map[string]*guild
	guildOrder   []string
	channels     map[string]*channel
	channelOrder []string
	dms          map[string]string // user id -> DM channel id
	messages     map[string]*message
	msgOrder     []string
	nonces       map[string]nonceEntry
	commands     map[string][]*discordgo.ApplicationCommand // "" = global, else guild id
	commandIDs   map[string]string                          // scope+type+name -> id
	interactions map[string]*interaction
	intOrder     []string
	threads      []string
	files        map[string]storedFile
	typing       []Typing
	reactions    []Reaction
	requests     []Request

	sessions    map[string]*session
	conns       map[*gwConn]struct{}
	identifies  []Identify
	payloads    []GatewayPayload
	nIdentified int
	nResumed    int
	markIdent   int // nIdentified at the last DropConnections etc.
	markResume  int
	liveConns   int
	connCh      chan struct{}
	connClosed  bool
}

// New starts a fake Discord on an httptest server for a test and closes it
// in tb.Cleanup. Misuse of the driving helpers (SendMessage with an unknown
// channel, a slash command that was never registered...) fails the test.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var o Options
	for _, opt := range opts {
		opt(&o)
	}
	s := NewServer(o)
	s.tb = tb
	s.ts = httptest.NewUnstartedServer(s.Handler())
	s.URL = "http://" + s.ts.Listener.Addr().String()
	s.ts.Start()
	tb.Cleanup(s.Close)
	return s
}

// NewServer builds a fake Discord without starting an HTTP server, for use
// outside tests: serve Handler yourself and call Close when done. Misuse of
// the driving helpers panics.
func NewServer(opts Options) *Server {
	if opts.Token == "" {
		opts.Token = DefaultToken
	}
	if opts.ApplicationID == "" {
		opts.ApplicationID = DefaultApplicationID
	}
	if opts.BotUserID == "" {
		opts.BotUserID = opts.ApplicationID
	}
	if opts.BotUsername == "" {
		opts.BotUsername = DefaultBotUsername
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if opts.NonceWindow <= 0 {
		opts.NonceWindow = DefaultNonceWindow
	}
	if opts.RateLimitLimit <= 1 {
		opts.RateLimitLimit = 5
	}
	s := &Server{
		opts:         opts,
		clock:        opts.Clock,
		changed:      make(chan struct{}),
		users:        map[string]*discordgo.User{},
		guilds:       map[string]*guild{},
		channels:     map[string]*channel{},
		dms:          map[string]string{},
		messages:     map[string]*message{},
		files:        map[string]storedFile{},
		nonces:       map[string]nonceEntry{},
		commands:     map[string][]*discordgo.ApplicationCommand{},
		commandIDs:   map[string]string{},
		interactions: map[string]*interaction{},
		sessions:     map[string]*session{},
		conns:        map[*gwConn]struct{}{},
		connCh:       make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = clockwork.NewFakeClockAt(DefaultStart)
	}
	s.fake, _ = s.clock.(*clockwork.FakeClock)
	s.upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	s.bot = &discordgo.User{
		ID: opts.BotUserID, Username: opts.BotUsername, Discriminator: "0",
		Bot: true, Verified: true, Flags: 0,
	}
	s.users[s.bot.ID] = s.bot
	return s
}

// Handler serves the REST API under /api/v9 and /api/v10, the gateway at
// /gateway and uploaded attachments at /attachments/.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Close drops every gateway connection and stops the httptest server if
// New started one. It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	conns := s.connListLocked()
	s.notifyLocked()
	s.mu.Unlock()
	for _, c := range conns {
		c.kill()
	}
	if s.ts != nil {
		s.ts.Close()
	}
}

// Clock is the fake's clock.
func (s *Server) Clock() clockwork.Clock { return s.clock }

// Advance moves the fake clock. It panics when the server runs on a clock
// that is not a *clockwork.FakeClock.
func (s *Server) Advance(d time.Duration) {
	if s.fake == nil {
		panic("discordtest: Advance needs a *clockwork.FakeClock")
	}
	s.fake.Advance(d)
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
}

// Token is the bot token the fake accepts (without "Bot ").
func (s *Server) Token() string { return s.opts.Token }

// ApplicationID is the application's id.
func (s *Server) ApplicationID() string { return s.opts.ApplicationID }

// BotUser is the bot's user object.
func (s *Server) BotUser() *discordgo.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return deepCopy(s.bot)
}

// notifyLocked wakes every waiter.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitSnap takes a snapshot under the lock and checks it outside, until
// check reports true or ctx ends; check may call the Server.
func waitSnap[T any](ctx context.Context, s *Server, take func() T, check func(T) bool) error {
	for {
		s.mu.Lock()
		v := take()
		ch := s.changed
		s.mu.Unlock()
		if check(v) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitFor calls check under the lock until it reports true or ctx ends.
func (s *Server) waitFor(ctx context.Context, check func() bool) error {
	for {
		s.mu.Lock()
		if check() {
			s.mu.Unlock()
			return nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// discordEpoch is 2015-01-01T00:00:00Z in milliseconds.
const discordEpoch = 1420070400000

// newIDLocked makes a snowflake from the clock and a counter: unique, and
// increasing as long as the clock does not go back.
func (s *Server) newIDLocked() string {
	s.idSeq++
	ms := uint64(s.clock.Now().UnixMilli() - discordEpoch)
	return strconv.FormatUint(ms<<22|(s.idSeq&(1<<22-1)), 10)
}

// now is the clock's time in UTC.
func (s *Server) now() time.Time { return s.clock.Now().UTC() }

// fail reports misuse of a driving helper: the test fails when the server
// came from New, else it panics. Call it without holding s.mu.
func (s *Server) fail(err error) {
	if s.tb != nil {
		s.tb.Helper()
		s.tb.Fatalf("discordtest: %v", err)
	}
	panic("discordtest: " + err.Error())
}
