package hordeapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordedSleeps collects the waits a client would have made.
type recordedSleeps struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (r *recordedSleeps) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.waits = append(r.waits, d)
	r.mu.Unlock()
	return ctx.Err()
}

func (r *recordedSleeps) all() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.waits...)
}

func mustClient(tb testing.TB, url string, mutate func(*Config), opts ...Option) (*Client, *recordedSleeps) {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.BaseURL = url
	if mutate != nil {
		mutate(&cfg)
	}
	rs := &recordedSleeps{}
	c, err := New(cfg, append([]Option{WithSleep(rs.sleep), WithVersion("1.2.3")}, opts...)...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return c, rs
}

// scripted answers each call with the next response in line and counts calls.
type scripted struct {
	mu        sync.Mutex
	responses []func(http.ResponseWriter, *http.Request)
	calls     atomic.Int32
	last      *http.Request
	lastBody  []byte
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	i := int(s.calls.Add(1)) - 1
	s.last, s.lastBody = r.Clone(context.Background()), body
	var h func(http.ResponseWriter, *http.Request)
	if i < len(s.responses) {
		h = s.responses[i]
	} else {
		h = s.responses[len(s.responses)-1]
	}
	s.mu.Unlock()
	h(w, r)
}

func jsonAnswer(status int, body string, headers ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func resetConn(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		conn.Close()
	}
}

func newScripted(t *testing.T, rs ...func(http.ResponseWriter, *http.Request)) (*scripted, string) {
	t.Helper()
	s := &scripted{responses: rs}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL + "/api"
}

func TestHeaders(t *testing.T) {
	const statusOK = `{"done":false,"is_possible":true,"generations":[]}`
	tests := []struct {
		name        string
		operatorKey string
		passkey     string
		who         Caller
		wantKey     string
		wantProxy   string
		wantFor     string
	}{
		{name: "anonymous without operator key", wantKey: AnonymousKey},
		{name: "operator key when caller has none", operatorKey: "op-key-123", wantKey: "op-key-123"},
		{name: "caller key wins", operatorKey: "op-key-123", who: Caller{APIKey: "user-key-456"}, wantKey: "user-key-456"},
		{name: "passkey and proxied-for", passkey: "pass-word-xyz", who: Caller{ProxiedFor: "fd12:3456::1"}, wantKey: AnonymousKey, wantProxy: "pass-word-xyz", wantFor: "fd12:3456::1"},
		{name: "proxied-for without passkey still sent", who: Caller{ProxiedFor: "203.0.113.9"}, wantKey: AnonymousKey, wantFor: "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, url := newScripted(t, jsonAnswer(200, statusOK))
			c, _ := mustClient(t, url, func(c *Config) { c.APIKey, c.ProxyPasskey, c.Contact = tt.operatorKey, tt.passkey, "ops@example.org" })
			if _, err := c.TextStatus(context.Background(), tt.who, "abc-123"); err != nil {
				t.Fatal(err)
			}
			h := s.last.Header
			if got := h.Get("apikey"); got != tt.wantKey {
				t.Errorf("apikey = %q, want %q", got, tt.wantKey)
			}
			if got := h.Get("Client-Agent"); got != "hordechat:1.2.3:ops@example.org" {
				t.Errorf("Client-Agent = %q", got)
			}
			if got := h.Get("Proxy-Authorization"); got != tt.wantProxy {
				t.Errorf("Proxy-Authorization = %q, want %q", got, tt.wantProxy)
			}
			if got := h.Get("Proxied-For"); got != tt.wantFor {
				t.Errorf("Proxied-For = %q, want %q", got, tt.wantFor)
			}
			if s.last.URL.Path != "/api/v2/generate/text/status/abc-123" {
				t.Errorf("path = %q", s.last.URL.Path)
			}
		})
	}
}

func TestSubmitEncoding(t *testing.T) {
	s, url := newScripted(t, jsonAnswer(202, `{"id":"req-1","kudos":0}`))
	c, _ := mustClient(t, url, nil)
	req := &TextRequest{
		Prompt:            "Hello",
		Models:            []string{"koboldcpp/Fimbulvetr-11B-v2"},
		ValidatedBackends: Ptr(true),
		SlowWorkers:       Ptr(true),
		Params: &TextParams{
			N:                Ptr(1),
			MaxLength:        Ptr(200),
			MaxContextLength: Ptr(4096),
			Temperature:      Ptr(0.0), // zero but set: must be sent
			StopSequence:     []string{"\nUser:"},
		},
	}
	resp, err := c.SubmitText(context.Background(), Caller{}, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ID != "req-1" {
		t.Fatalf("id = %q", resp.ID)
	}
	var got map[string]any
	if err := json.Unmarshal(s.lastBody, &got); err != nil {
		t.Fatal(err)
	}
	want := `{"prompt":"Hello","params":{"n":1,"max_context_length":4096,"max_length":200,"temperature":0,"stop_sequence":["\nUser:"]},"models":["koboldcpp/Fimbulvetr-11B-v2"],"validated_backends":true,"slow_workers":true}`
	if string(s.lastBody) != want {
		t.Errorf("body:\n got %s\nwant %s", s.lastBody, want)
	}
	if ct := s.last.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestErrorsMapToSentinels(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   []error
		notIs  []error
	}{
		{name: "invalid key", status: 401, body: `{"message":"No user matching sent API Key.","rc":"InvalidAPIKey"}`, want: []error{ErrInvalidKey}, notIs: []error{ErrRateLimited}},
		{name: "limiter", status: 429, body: `{"message":"2 per 1 second"}`, want: []error{ErrRateLimited}, notIs: []error{ErrTooManyPrompts}},
		{name: "too many prompts", status: 429, body: `{"message":"Parallel requests (31) exceeded user limit (30).","rc":"TooManyPrompts"}`, want: []error{ErrTooManyPrompts}, notIs: []error{ErrRateLimited}},
		{name: "not found", status: 404, body: `{"message":"Request not found","rc":"RequestNotFound"}`, want: []error{ErrNotFound}},
		{name: "kudos upfront", status: 403, body: `{"message":"Due to heavy demand...","rc":"KudosUpfront"}`, want: []error{ErrKudosUpfront}},
		{name: "shared key kudos", status: 403, body: `{"message":"x","rc":"SharedKeyInsufficientKudos"}`, want: []error{ErrKudosUpfront}},
		{name: "ip timeout", status: 403, body: `{"message":"timeout for 300 more seconds","rc":"TimeoutIP"}`, want: []error{ErrIPTimeout}},
		{name: "maintenance", status: 400, body: `{"message":"maintenance","rc":"MaintenanceMode"}`, want: []error{ErrMaintenance}, notIs: []error{ErrInvalidRequest}},
		{name: "validation", status: 400, body: `{"message":"Input payload validation failed","errors":{"params.max_length":"5000 is greater than the maximum of 4096"}}`, want: []error{ErrInvalidRequest}},
		{name: "server error", status: 500, body: `{"message":"Internal Server Error"}`, want: []error{ErrUnavailable}},
		{name: "html gateway page", status: 502, body: `<html>bad gateway</html>`, want: []error{ErrUnavailable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := newScripted(t, jsonAnswer(tt.status, tt.body))
			c, _ := mustClient(t, url, func(c *Config) { c.MaxRetries = 0 })
			_, err := c.SubmitText(context.Background(), Caller{}, &TextRequest{Prompt: "x"})
			if err == nil {
				t.Fatal("want error")
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Status != tt.status {
				t.Fatalf("err = %v, want *APIError with status %d", err, tt.status)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("errors.Is(%v, %v) = false", err, w)
				}
			}
			for _, w := range tt.notIs {
				if errors.Is(err, w) {
					t.Errorf("errors.Is(%v, %v) = true", err, w)
				}
			}
		})
	}
}

func TestErrorNeverContainsKeys(t *testing.T) {
	const userKey, passkey, opKey = "user-secret-key-1", "proxy-pass-key-2", "operator-key-3"
	body := `{"message":"bad key user-secret-key-1 with proxy-pass-key-2 and operator-key-3","errors":{"apikey":"user-secret-key-1 is wrong"}}`
	_, url := newScripted(t, jsonAnswer(400, body))
	c, _ := mustClient(t, url, func(c *Config) { c.ProxyPasskey, c.APIKey = passkey, opKey })
	_, err := c.FindUser(context.Background(), Caller{APIKey: userKey})
	if err == nil {
		t.Fatal("want error")
	}
	for _, secret := range []string{userKey, passkey, opKey} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains a secret", err)
		}
	}
}

func TestRetries(t *testing.T) {
	ok := jsonAnswer(200, `[]`)
	tests := []struct {
		name      string
		answers   []func(http.ResponseWriter, *http.Request)
		submit    bool
		wantCalls int32
		wantErr   error
		wantWaits []time.Duration // exact waits; nil means "any, but count = calls-1"
	}{
		{name: "get retries 5xx then succeeds", answers: []func(http.ResponseWriter, *http.Request){jsonAnswer(503, `{}`), jsonAnswer(500, `{}`), ok}, wantCalls: 3},
		{name: "get honours retry-after", answers: []func(http.ResponseWriter, *http.Request){jsonAnswer(429, `{"message":"90 per 1 minute"}`, "Retry-After", "7"), ok}, wantCalls: 2, wantWaits: []time.Duration{7 * time.Second}},
		{name: "get gives up after max retries", answers: []func(http.ResponseWriter, *http.Request){jsonAnswer(500, `{}`)}, wantCalls: 4, wantErr: ErrUnavailable},
		{name: "retry-after beyond max wait ends the call", answers: []func(http.ResponseWriter, *http.Request){jsonAnswer(429, `{"message":"x"}`, "Retry-After", "3600")}, wantCalls: 1, wantErr: ErrRateLimited, wantWaits: []time.Duration{}},
		{name: "get does not retry 4xx", answers: []func(http.ResponseWriter, *http.Request){jsonAnswer(404, `{"message":"nope","rc":"RequestNotFound"}`)}, wantCalls: 1, wantErr: ErrNotFound, wantWaits: []time.Duration{}},
		{name: "get retries a reset connection", answers: []func(http.ResponseWriter, *http.Request){resetConn, ok}, wantCalls: 2},
		{name: "submit not resent after 5xx", submit: true, answers: []func(http.ResponseWriter, *http.Request){jsonAnswer(500, `{}`), jsonAnswer(202, `{"id":"x"}`)}, wantCalls: 1, wantErr: ErrUnavailable, wantWaits: []time.Duration{}},
		{name: "submit not resent after reset", submit: true, answers: []func(http.ResponseWriter, *http.Request){resetConn, jsonAnswer(202, `{"id":"x"}`)}, wantCalls: 1, wantErr: ErrUnavailable, wantWaits: []time.Duration{}},
		{name: "submit resent after limiter 429", submit: true, answers: []func(http.ResponseWriter, *http.Request){jsonAnswer(429, `{"message":"2 per 1 second"}`, "Retry-After", "1"), jsonAnswer(202, `{"id":"x"}`)}, wantCalls: 2, wantWaits: []time.Duration{time.Second}},
		{name: "submit not resent after TooManyPrompts", submit: true, answers: []func(http.ResponseWriter, *http.Request){jsonAnswer(429, `{"message":"x","rc":"TooManyPrompts"}`), jsonAnswer(202, `{"id":"x"}`)}, wantCalls: 1, wantErr: ErrTooManyPrompts, wantWaits: []time.Duration{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, url := newScripted(t, tt.answers...)
			c, rs := mustClient(t, url, nil)
			var err error
			if tt.submit {
				_, err = c.SubmitText(context.Background(), Caller{}, &TextRequest{Prompt: "x"})
			} else {
				_, err = c.Workers(context.Background(), Caller{})
			}
			if tt.wantErr == nil && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got := s.calls.Load(); got != tt.wantCalls {
				t.Errorf("calls = %d, want %d", got, tt.wantCalls)
			}
			waits := rs.all()
			if tt.wantWaits != nil {
				if len(waits) != len(tt.wantWaits) {
					t.Fatalf("waits = %v, want %v", waits, tt.wantWaits)
				}
				for i := range waits {
					if waits[i] != tt.wantWaits[i] {
						t.Errorf("wait[%d] = %v, want %v", i, waits[i], tt.wantWaits[i])
					}
				}
			} else if len(waits) != int(tt.wantCalls)-1 {
				t.Errorf("waits = %v, want %d of them", waits, tt.wantCalls-1)
			}
			for _, w := range waits {
				if w <= 0 || w > DefaultConfig().MaxRetryWait {
					t.Errorf("wait %v out of (0, max]", w)
				}
			}
		})
	}
}

// A submit whose dial failed never reached the Horde, so it is safe to resend.
func TestSubmitRetriedAfterDialFailure(t *testing.T) {
	s, url := newScripted(t, jsonAnswer(202, `{"id":"req-9"}`))
	var dials atomic.Int32
	d := &net.Dialer{}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
		}
		return d.DialContext(ctx, network, addr)
	}}}
	c, rs := mustClient(t, url, nil, WithHTTPClient(hc))
	resp, err := c.SubmitText(context.Background(), Caller{}, &TextRequest{Prompt: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.ID != "req-9" || s.calls.Load() != 1 || len(rs.all()) != 1 {
		t.Errorf("id=%q calls=%d waits=%v", resp.ID, s.calls.Load(), rs.all())
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	s, url := newScripted(t, jsonAnswer(503, `{}`))
	ctx, cancel := context.WithCancel(context.Background())
	c, _ := mustClient(t, url, nil, WithSleep(func(ctx context.Context, _ time.Duration) error {
		cancel()
		return ctx.Err()
	}))
	_, err := c.Workers(ctx, Caller{})
	if !errors.Is(err, ErrUnavailable) || s.calls.Load() != 1 {
		t.Fatalf("err=%v calls=%d", err, s.calls.Load())
	}
}

func TestLenientDecoding(t *testing.T) {
	workers := `[
	 {"name":"a","id":"1","models":["m"],"max_length":512,"max_context_length":8192,"threads":2,"performance":"12.5 tokens per second","team":{"id":"t1","name":"Team"},"online":true},
	 {"name":"b","id":"2","models":["m"],"performance":"","team":{}},
	 {"name":"c","id":"3","models":["m"],"performance":"fast","team":null},
	 {"name":"d","id":"4","models":["m"],"performance":"3 tokens per second","team":"weird","unknown_field":[1,2]}
	]`
	_, url := newScripted(t, jsonAnswer(200, workers))
	c, _ := mustClient(t, url, nil)
	ws, err := c.Workers(context.Background(), Caller{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		tps  float64
		team string
	}{{12.5, "Team"}, {0, ""}, {0, ""}, {3, ""}}
	for i, w := range ws {
		if got := w.TokensPerSecond(); got != want[i].tps {
			t.Errorf("%s: tps = %v, want %v", w.Name, got, want[i].tps)
		}
		if w.Team.Name != want[i].team {
			t.Errorf("%s: team = %q", w.Name, w.Team.Name)
		}
	}
	if !ws[0].Serves("m") || ws[0].Serves("M") {
		t.Error("Serves must be exact and case-sensitive")
	}
}

func TestStatusDecodesSeedsAndCensorship(t *testing.T) {
	body := `{"finished":2,"done":true,"is_possible":true,"generations":[
	 {"text":"a","seed":0,"worker_id":"w","model":"m","state":"ok"},
	 {"text":"b","seed":"123","state":"ok","gen_metadata":[{"type":"censorship","value":"csam"}]}]}`
	_, url := newScripted(t, jsonAnswer(200, body))
	c, _ := mustClient(t, url, nil)
	st, err := c.CancelText(context.Background(), Caller{}, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Generations[0].Seed != "0" || st.Generations[1].Seed != "123" {
		t.Errorf("seeds = %q, %q", st.Generations[0].Seed, st.Generations[1].Seed)
	}
	if st.Generations[0].Censored() || !st.Generations[1].Censored() {
		t.Error("censorship flags wrong")
	}
}

func TestStatusRejectsBadIDs(t *testing.T) {
	c, _ := mustClient(t, "http://127.0.0.1:1/api", nil)
	for _, id := range []string{"", "a/b", "x?y", "z#"} {
		if _, err := c.TextStatus(context.Background(), Caller{}, id); err == nil {
			t.Errorf("id %q accepted", id)
		}
	}
}

func TestDecodeWebhook(t *testing.T) {
	p, err := DecodeWebhook(strings.NewReader(`{"text":"hi","seed":1,"worker_id":"w","worker_name":"W","model":"m","id":"job","request":"req","kudos":3.5}`))
	if err != nil || p.Request != "req" || p.Kudos != 3.5 || p.Seed != "1" {
		t.Fatalf("p=%+v err=%v", p, err)
	}
	if _, err := DecodeWebhook(strings.NewReader(`{"text":"hi"}`)); err == nil {
		t.Error("payload without request id accepted")
	}
	if _, err := DecodeWebhook(strings.NewReader(`not json`)); err == nil {
		t.Error("garbage accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantKey string // "" means valid
	}{
		{name: "defaults", mutate: func(*Config) {}},
		{name: "not a url", mutate: func(c *Config) { c.BaseURL = "aihorde.net" }, wantKey: "horde.base_url"},
		{name: "v2 suffix", mutate: func(c *Config) { c.BaseURL = "https://aihorde.net/api/v2" }, wantKey: "horde.base_url"},
		{name: "key with space", mutate: func(c *Config) { c.APIKey = "abc def" }, wantKey: "horde.api_key"},
		{name: "passkey newline", mutate: func(c *Config) { c.ProxyPasskey = "abc\n" }, wantKey: "horde.proxy_passkey"},
		{name: "empty contact", mutate: func(c *Config) { c.Contact = " " }, wantKey: "horde.contact"},
		{name: "tiny timeout", mutate: func(c *Config) { c.Timeout = time.Millisecond }, wantKey: "horde.timeout"},
		{name: "retries", mutate: func(c *Config) { c.MaxRetries = 11 }, wantKey: "horde.max_retries"},
		{name: "retry wait", mutate: func(c *Config) { c.MaxRetryWait = time.Hour }, wantKey: "horde.max_retry_wait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantKey) {
				t.Fatalf("err = %v, want one naming %s", err, tt.wantKey)
			}
			if tt.name == "key with space" && strings.Contains(err.Error(), "abc def") {
				t.Error("error echoes the key")
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"5", 5 * time.Second}, {"-3", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	for attempt := 0; attempt < 20; attempt++ {
		for i := 0; i < 50; i++ {
			d := backoff(attempt, 30*time.Second)
			hi := min(500*time.Millisecond<<min(attempt, 10), 30*time.Second)
			if d < hi/2 || d > hi {
				t.Fatalf("backoff(%d) = %v outside [%v, %v]", attempt, d, hi/2, hi)
			}
		}
	}
}

func TestWithoutRetries(t *testing.T) {
	s, url := newScripted(t, jsonAnswer(503, `{}`))
	c, rs := mustClient(t, url, nil)
	if _, err := c.WithoutRetries().Workers(context.Background(), Caller{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if s.calls.Load() != 1 || len(rs.all()) != 0 {
		t.Errorf("calls = %d, waits = %v", s.calls.Load(), rs.all())
	}
	if _, err := c.Workers(context.Background(), Caller{}); err == nil || s.calls.Load() != 5 {
		t.Errorf("the original client lost its retries: calls = %d", s.calls.Load())
	}
}
