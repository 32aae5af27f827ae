package hordetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// DefaultStart is when the default fake clock starts.
var DefaultStart = time.Date(2026, time.January, 5, 12, 0, 0, 0, time.UTC)

// Options configure a fake Horde. The zero value is usable.
type Options struct {
	// Clock drives the simulation. Nil means a clockwork.FakeClock at
	// DefaultStart, moved by Server.Advance. With a real clock a background
	// ticker runs the simulation so that jobs finish and webhooks fire.
	Clock clockwork.Clock
	// Passkey is the proxy passkey: Proxied-For is honoured only when
	// Proxy-Authorization equals it exactly. Empty honours nothing.
	Passkey string
	// LenientProxiedFor accepts any Proxied-For value. By default an
	// honoured value that is not a valid IP, or is longer than 39
	// characters, makes a submit fail with 500 {"message": "Internal Server
	// Error"}: what the real Horde does while any IP-block timeout is active
	// (always, in production) or when the value overflows its VARCHAR(39).
	LenientProxiedFor bool
	// Workers replace DefaultWorkers when non-nil.
	Workers []Worker
	// NoDefaultWorkers starts without workers when Workers is nil.
	NoDefaultWorkers bool
	// Users are added after the anonymous user and the TestAPIKey user.
	Users []User
	// Responder generates job texts; nil means DefaultResponder.
	Responder Responder
	// WebhookClient posts webhooks; nil means a client with a 10 s timeout.
	WebhookClient *http.Client
	// DisableRateLimits turns the limiter off (TooManyPrompts still applies).
	DisableRateLimits bool
	// WhitelistedIPs get the service limits (300/min, 10/s, 60/s per key).
	WhitelistedIPs []string
	// Seed makes request and job ids reproducible; 0 means 1.
	Seed uint64
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// TickInterval is how often a real clock drives the simulation;
	// 0 means 200 ms.
	TickInterval time.Duration
}

// Option changes Options; see New.
type Option func(*Options)

// WithClock sets Options.Clock.
func WithClock(c clockwork.Clock) Option { return func(o *Options) { o.Clock = c } }

// WithPasskey sets Options.Passkey.
func WithPasskey(p string) Option { return func(o *Options) { o.Passkey = p } }

// WithResponder sets Options.Responder.
func WithResponder(r Responder) Option { return func(o *Options) { o.Responder = r } }

// WithWebhookClient sets Options.WebhookClient.
func WithWebhookClient(c *http.Client) Option { return func(o *Options) { o.WebhookClient = c } }

// WithWorkers starts the fake with exactly these workers (none when empty).
func WithWorkers(ws ...Worker) Option {
	return func(o *Options) { o.Workers, o.NoDefaultWorkers = ws, true }
}

// WithUsers adds accounts at start.
func WithUsers(us ...User) Option { return func(o *Options) { o.Users = append(o.Users, us...) } }

// WithoutRateLimits sets Options.DisableRateLimits.
func WithoutRateLimits() Option { return func(o *Options) { o.DisableRateLimits = true } }

// WithOptions replaces all options at once.
func WithOptions(opts Options) Option { return func(o *Options) { *o = opts } }

// Server is a fake AI Horde. All methods are safe for concurrent use.
type Server struct {
	// URL is the API base including "/api", like https://aihorde.net/api.
	// New sets it; with Serve the base is "http://" + l.Addr() + "/api".
	URL string

	opts      Options
	clock     clockwork.Clock
	fake      *clockwork.FakeClock
	log       *slog.Logger
	responder Responder
	hooks     *webhookQueue
	faults    faultSet
	rec       recorder

	mu          sync.Mutex
	now         time.Time
	nextAgeing  time.Time
	nextCleanup time.Time
	seq         uint64
	rng         *rand.Rand
	users       map[string]*user
	nextUserID  int
	workers     []*worker
	requests    map[string]*request
	order       []*request // creation order
	running     []*job
	jobFaults   int
	tokenLog    []tokenEvent
	limits      limiter
	statusCache map[string]cachedBody
	userCache   map[string]cachedBody
	timeouts    map[string]time.Time
	whitelist   map[string]time.Time
	maintenance bool

	ts        *httptest.Server
	hs        *http.Server
	closed    bool
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type cachedBody struct {
	body  []byte
	until time.Time
}

// New starts a fake Horde on an httptest server for a test and closes it in
// tb.Cleanup. Without options it has a fake clock at DefaultStart, the
// DefaultWorkers, the anonymous user and TestAPIKey.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var o Options
	for _, opt := range opts {
		opt(&o)
	}
	s := NewServer(o)
	s.ts = httptest.NewServer(s.Handler())
	s.URL = s.ts.URL + "/api"
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// NewServer builds a fake Horde without starting an HTTP server, for use
// outside tests: serve Handler yourself or call Serve. Call Close when done.
func NewServer(opts Options) *Server {
	s := &Server{
		opts:        opts,
		clock:       opts.Clock,
		log:         opts.Logger,
		responder:   opts.Responder,
		users:       map[string]*user{},
		requests:    map[string]*request{},
		statusCache: map[string]cachedBody{},
		userCache:   map[string]cachedBody{},
		timeouts:    map[string]time.Time{},
		whitelist:   map[string]time.Time{},
		limits:      limiter{windows: map[string]*window{}},
		stop:        make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = clockwork.NewFakeClockAt(DefaultStart)
	}
	s.fake, _ = s.clock.(*clockwork.FakeClock)
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.responder == nil {
		s.responder = DefaultResponder
	}
	client := opts.WebhookClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	s.hooks = newWebhookQueue(client)
	seed := opts.Seed
	if seed == 0 {
		seed = 1
	}
	s.rng = rand.New(rand.NewPCG(seed, 0x686f726465)) //nolint:gosec // ids, not secrets

	s.now = s.clock.Now()
	s.nextAgeing = s.now.Add(ageingInterval)
	s.nextCleanup = s.now.Add(cleanupInterval)
	s.addUserLocked(User{APIKey: AnonymousKey, Username: "Anonymous"})
	s.addUserLocked(User{APIKey: TestAPIKey, Username: "tester", ID: 1, Kudos: 1000})
	for _, u := range opts.Users {
		s.addUserLocked(u)
	}
	workers := opts.Workers
	if workers == nil && !opts.NoDefaultWorkers {
		workers = DefaultWorkers()
	}
	for _, w := range workers {
		w = withWorkerDefaults(w)
		nw := &worker{Worker: w, added: s.now, connected: !w.Offline, fulfilled: w.RequestsFulfilled}
		if nw.connected {
			nw.lastCheckIn = s.now
		}
		s.workers = append(s.workers, nw)
	}
	if s.fake == nil {
		tick := opts.TickInterval
		if tick <= 0 {
			tick = 200 * time.Millisecond
		}
		s.wg.Add(1)
		go s.drive(tick)
	}
	return s
}

// drive runs the simulation on a real clock.
func (s *Server) drive(tick time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			s.catchUpLocked(s.clock.Now())
			s.mu.Unlock()
		}
	}
}

// Handler is the fake's HTTP handler; it expects paths under /api/v2.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Serve serves the fake on l until Shutdown or Close, and then returns
// http.ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = l.Close()
		return http.ErrServerClosed
	}
	s.hs = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	hs := s.hs
	s.mu.Unlock()
	return hs.Serve(l)
}

// Shutdown gracefully stops a server started with Serve, then closes the fake.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	hs := s.hs
	s.mu.Unlock()
	var err error
	if hs != nil {
		s.faults.releaseAll()
		err = hs.Shutdown(ctx)
	}
	return errors.Join(err, s.Close())
}

// Close releases held requests, stops the HTTP server, the simulation
// ticker and webhook delivery. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.faults.releaseAll()
		if s.ts != nil {
			s.ts.Close()
		}
		s.mu.Lock()
		s.closed = true
		hs := s.hs
		s.mu.Unlock()
		if hs != nil {
			_ = hs.Close()
		}
		close(s.stop)
		s.wg.Wait()
		s.hooks.close()
	})
	return nil
}

// Clock returns the clock that drives the simulation.
func (s *Server) Clock() clockwork.Clock { return s.clock }

// FakeClock returns the fake clock, or nil when the fake runs on a real one.
func (s *Server) FakeClock() *clockwork.FakeClock { return s.fake }

// Now is the simulated time the fake has caught up to.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Advance moves the fake clock forward by d and runs the simulation up to
// the new time. Webhooks it causes are delivered in the background; see
// FlushWebhooks. It panics on a real clock.
func (s *Server) Advance(d time.Duration) {
	if s.fake == nil {
		panic("hordetest: Advance needs a fake clock")
	}
	s.fake.Advance(d)
	s.Sync()
}

// Sync runs the simulation up to the clock's now. Call it after moving a
// shared fake clock yourself; requests to the fake also catch up lazily.
func (s *Server) Sync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
}

// AdvanceUntilDone advances the fake clock event by event until the request
// is done, but by at most limit. It returns the final status, or an error if
// the request is unknown or not done in time.
func (s *Server) AdvanceUntilDone(id string, limit time.Duration) (Status, error) {
	if s.fake == nil {
		panic("hordetest: AdvanceUntilDone needs a fake clock")
	}
	s.Sync()
	deadline := s.clock.Now().Add(limit)
	for {
		st, ok := s.Status(id)
		if !ok {
			return Status{}, fmt.Errorf("hordetest: request %s not found", id)
		}
		if st.Done {
			return st, nil
		}
		now := s.clock.Now()
		if !now.Before(deadline) {
			return st, fmt.Errorf("hordetest: request %s not done after %s", id, limit)
		}
		s.mu.Lock()
		next := s.nextEventLocked()
		s.mu.Unlock()
		if next.After(deadline) {
			next = deadline
		}
		s.Advance(max(next.Sub(now), 0))
	}
}

// Status returns a request's current status as GET status would, without
// the 1 s cache, rate limits or recording, and without refreshing the
// is_possible cache. ok is false for an unknown or deleted request.
func (s *Server) Status(id string) (st Status, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	r, ok := s.requests[id]
	if !ok {
		return Status{}, false
	}
	return s.statusLocked(r, true), true
}

// RequestInfo is what the fake stored for a text request.
type RequestInfo struct {
	ID               string
	Identity         string // the client identity (Proxied-For when honoured)
	RemoteAddr       string
	ClientAgent      string
	Username         string // alias#id
	ProxiedAccount   string
	Prompt           string
	Params           map[string]any
	Models           []string
	N                int
	MaxLength        int // after any allow_downgrade
	MaxContextLength int
	Webhook          string
	Priority         int
	Created          time.Time
	Expiry           time.Time
	Cancelled        bool
}

// Request returns what the fake stored for a request id.
func (s *Server) Request(id string) (RequestInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	r, ok := s.requests[id]
	if !ok {
		return RequestInfo{}, false
	}
	return RequestInfo{
		ID: r.id, Identity: r.identity, RemoteAddr: r.remote, ClientAgent: r.clientAgent,
		Username: r.user.Alias(), ProxiedAccount: r.proxiedAccount, Prompt: r.prompt,
		Params: cloneJSON(r.params), Models: slices.Clone(r.models), N: r.n,
		MaxLength: r.maxLength, MaxContextLength: r.maxCtx, Webhook: r.webhook,
		Priority: r.priority, Created: r.created, Expiry: r.expiry, Cancelled: r.cancelled,
	}, true
}

// RequestIDs lists the live requests, oldest first.
func (s *Server) RequestIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	ids := make([]string, len(s.order))
	for i, r := range s.order {
		ids[i] = r.id
	}
	return ids
}

// newUUIDLocked makes a version-4-shaped UUID from the seeded generator.
func (s *Server) newUUIDLocked() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(s.rng.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
