// Package hordeapi is a small client for the AI Horde v2 REST API: the text
// generation endpoints and the discovery endpoints hordechat needs.
//
// Every call names the Caller it is made for, so that the Horde's rate limits
// and sanctions land on that person (see design.md, "Identity forwarding").
// Errors are *APIError values that match the package sentinels with
// errors.Is and never contain a key.
package hordeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultBaseURL is the public AI Horde.
const DefaultBaseURL = "https://aihorde.net/api"

// maxBody bounds how much of an answer is read; a status with 20 long
// generations is well under a megabyte.
const maxBody = 16 << 20

// Config configures the Client. The cmd layer fills it from the [horde]
// section of the configuration.
type Config struct {
	// BaseURL is the Horde's API root, without /v2.
	BaseURL string `koanf:"base_url"`
	// APIKey is the operator's key, used when a call's Caller names none.
	// Empty means the anonymous key.
	APIKey string `koanf:"api_key" secret:"true"`
	// ProxyPasskey is the operator's service passkey, sent as
	// Proxy-Authorization so the Horde honours Proxied-For.
	ProxyPasskey string `koanf:"proxy_passkey" secret:"true"`
	// Contact ends the Client-Agent header: a URL or handle the Horde's
	// admins can reach the operator at.
	Contact string `koanf:"contact"`
	// Timeout bounds one HTTP attempt.
	Timeout time.Duration `koanf:"timeout"`
	// MaxRetries bounds the retries of one call after the first attempt.
	MaxRetries int `koanf:"max_retries"`
	// MaxRetryWait is the longest single wait a retry may take; a
	// Retry-After beyond it ends the call with the error instead.
	MaxRetryWait time.Duration `koanf:"max_retry_wait"`
}

// DefaultConfig returns the configuration for the public Horde.
func DefaultConfig() Config {
	return Config{
		BaseURL:      DefaultBaseURL,
		Contact:      "https://github.com/hordechat/hordechat",
		Timeout:      30 * time.Second,
		MaxRetries:   3,
		MaxRetryWait: 30 * time.Second,
	}
}

// Validate reports the first invalid value, naming its key.
func (c Config) Validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("horde.base_url %q: must be an http(s) URL such as %s", c.BaseURL, DefaultBaseURL)
	}
	if strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/v2") {
		return fmt.Errorf("horde.base_url %q: leave out the /v2 suffix (use %s)", c.BaseURL, DefaultBaseURL)
	}
	if strings.ContainsAny(c.APIKey, " \t\r\n") {
		return errors.New("horde.api_key: contains white space; paste the key alone")
	}
	if strings.ContainsAny(c.ProxyPasskey, " \t\r\n") {
		return errors.New("horde.proxy_passkey: contains white space; paste the passkey alone")
	}
	if strings.TrimSpace(c.Contact) == "" {
		return errors.New("horde.contact: must not be empty; give a URL or handle where Horde admins can reach you")
	}
	if strings.ContainsAny(c.Contact, "\r\n") {
		return fmt.Errorf("horde.contact %q: must be a single line", c.Contact)
	}
	if c.Timeout < time.Second || c.Timeout > 10*time.Minute {
		return fmt.Errorf("horde.timeout %s: must be between 1s and 10m", c.Timeout)
	}
	if c.MaxRetries < 0 || c.MaxRetries > 10 {
		return fmt.Errorf("horde.max_retries %d: must be between 0 and 10", c.MaxRetries)
	}
	if c.MaxRetryWait < 0 || c.MaxRetryWait > 10*time.Minute {
		return fmt.Errorf("horde.max_retry_wait %s: must be between 0s and 10m", c.MaxRetryWait)
	}
	return nil
}

// Caller says on whose behalf a call is made.
type Caller struct {
	// APIKey is the Horde key to use; empty means the operator's key from
	// Config, or the anonymous key when there is none.
	APIKey string
	// ProxiedFor is the end user's address forwarded to the Horde; empty
	// sends none.
	ProxiedFor string
}

// Client calls the Horde. It is safe for concurrent use.
type Client struct {
	base        string
	cfg         Config
	clientAgent string
	hc          *http.Client
	sleep       func(context.Context, time.Duration) error
}

// Option changes a Client at construction.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (its Timeout is left as given).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithVersion sets the version part of the Client-Agent header.
func WithVersion(v string) Option {
	return func(c *Client) { c.clientAgent = clientAgent(v, c.cfg.Contact) }
}

// WithSleep replaces how the client waits between retries; tests use it to
// run retry schedules without waiting.
func WithSleep(f func(context.Context, time.Duration) error) Option {
	return func(c *Client) { c.sleep = f }
}

// New returns a Client for cfg, which must be valid.
func New(cfg Config, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{
		base:        strings.TrimRight(cfg.BaseURL, "/"),
		cfg:         cfg,
		clientAgent: clientAgent("dev", cfg.Contact),
		hc:          &http.Client{Timeout: cfg.Timeout},
		sleep:       sleepCtx,
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// WithoutRetries returns a copy of c that makes one attempt per call, for
// callers that schedule their own retries (the status poller).
func (c *Client) WithoutRetries() *Client {
	cp := *c
	cp.cfg.MaxRetries = 0
	return &cp
}

// ClientAgent is the Client-Agent header value sent on every call.
func (c *Client) ClientAgent() string { return c.clientAgent }

// OperatorKey is the configured operator key, or "" for none.
func (c *Client) OperatorKey() string { return c.cfg.APIKey }

func clientAgent(version, contact string) string {
	return "hordechat:" + version + ":" + strings.TrimSpace(contact)
}

// SubmitText queues a text request (202), or quotes it when req.DryRun is
// set (200, only Kudos filled). A submit is never sent twice unless the
// Horde provably did not take it (a rate-limiter 429, or a failed dial).
func (c *Client) SubmitText(ctx context.Context, who Caller, req *TextRequest) (*AsyncResponse, error) {
	if req == nil {
		return nil, errors.New("submit text: nil request")
	}
	var out AsyncResponse
	err := c.do(ctx, call{method: http.MethodPost, path: "/v2/generate/text/async", endpoint: "/v2/generate/text/async", body: req, who: who, submit: true}, &out)
	if err != nil {
		return nil, err
	}
	if !req.DryRun && out.ID == "" {
		return nil, &APIError{Method: http.MethodPost, Endpoint: "/v2/generate/text/async", Status: http.StatusAccepted, Message: "answer carried no request id"}
	}
	return &out, nil
}

// EstimateText asks the Horde what req would cost, in kudos, without queueing it.
func (c *Client) EstimateText(ctx context.Context, who Caller, req *TextRequest) (float64, error) {
	if req == nil {
		return 0, errors.New("estimate text: nil request")
	}
	dry := *req
	dry.DryRun = true
	dry.Webhook = ""
	out, err := c.SubmitText(ctx, who, &dry)
	if err != nil {
		return 0, err
	}
	return out.Kudos, nil
}

// TextStatus fetches a text request's state, with any finished generations.
func (c *Client) TextStatus(ctx context.Context, who Caller, id string) (*TextStatus, error) {
	return c.status(ctx, http.MethodGet, who, id)
}

// CancelText cancels a text request and returns its final state, including
// generations that finished before the cancel.
func (c *Client) CancelText(ctx context.Context, who Caller, id string) (*TextStatus, error) {
	return c.status(ctx, http.MethodDelete, who, id)
}

func (c *Client) status(ctx context.Context, method string, who Caller, id string) (*TextStatus, error) {
	if id == "" || strings.ContainsAny(id, "/?#") {
		return nil, fmt.Errorf("text status: invalid request id %q", id)
	}
	var out TextStatus
	err := c.do(ctx, call{method: method, path: "/v2/generate/text/status/" + url.PathEscape(id), endpoint: "/v2/generate/text/status/{id}", who: who}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Workers lists the online text workers.
func (c *Client) Workers(ctx context.Context, who Caller) ([]Worker, error) {
	var out []Worker
	err := c.do(ctx, call{method: http.MethodGet, path: "/v2/workers?type=text", endpoint: "/v2/workers", who: who}, &out)
	return out, err
}

// Models lists the text models that have workers, with queue and speed.
func (c *Client) Models(ctx context.Context, who Caller) ([]ActiveModel, error) {
	var out []ActiveModel
	err := c.do(ctx, call{method: http.MethodGet, path: "/v2/status/models?type=text", endpoint: "/v2/status/models", who: who}, &out)
	return out, err
}

// FindUser returns the account behind who.APIKey (or the operator's key).
// Use it to validate a key before linking it.
func (c *Client) FindUser(ctx context.Context, who Caller) (*UserDetails, error) {
	var out UserDetails
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v2/find_user", endpoint: "/v2/find_user", who: who}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Heartbeat reports whether the Horde node answering is up.
func (c *Client) Heartbeat(ctx context.Context) (*Heartbeat, error) {
	var out Heartbeat
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v2/status/heartbeat", endpoint: "/v2/status/heartbeat"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Performance returns the Horde's global load figures.
func (c *Client) Performance(ctx context.Context) (*Performance, error) {
	var out Performance
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v2/status/performance", endpoint: "/v2/status/performance"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Modes reports maintenance and invite-only modes.
func (c *Client) Modes(ctx context.Context) (*Modes, error) {
	var out Modes
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v2/status/modes", endpoint: "/v2/status/modes"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DecodeWebhook reads the payload the Horde POSTs to a request's webhook.
func DecodeWebhook(r io.Reader) (*WebhookPayload, error) {
	var p WebhookPayload
	dec := json.NewDecoder(io.LimitReader(r, maxBody))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decode webhook: %w", err)
	}
	if p.Request == "" {
		return nil, errors.New("decode webhook: no request id")
	}
	return &p, nil
}

type call struct {
	method   string
	path     string // with query
	endpoint string // path template for errors and metrics
	body     any
	who      Caller
	submit   bool // never resent unless the Horde provably did not take it
}

func (c *Client) do(ctx context.Context, cl call, out any) error {
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("encode %s: %w", cl.endpoint, err)
		}
	}
	key := c.keyFor(cl.who)
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, cl, key, payload, out)
		if err == nil {
			return nil
		}
		wait, retry := c.retryPlan(cl, err, attempt)
		if !retry {
			return err
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (gave up waiting to retry: %v)", err, serr)
		}
	}
}

func (c *Client) keyFor(who Caller) string {
	switch {
	case who.APIKey != "":
		return who.APIKey
	case c.cfg.APIKey != "":
		return c.cfg.APIKey
	default:
		return AnonymousKey
	}
}

// retryPlan decides whether err is worth another attempt and how long to
// wait first: jittered exponential backoff, or the Horde's Retry-After.
func (c *Client) retryPlan(cl call, err error, attempt int) (time.Duration, bool) {
	if attempt >= c.cfg.MaxRetries {
		return 0, false
	}
	var apiErr *APIError
	switch {
	case errors.As(err, &apiErr):
		limiter := apiErr.Status == http.StatusTooManyRequests && apiErr.RC == ""
		if cl.submit && !limiter {
			return 0, false // the Horde may have queued it: never resend
		}
		if !limiter && apiErr.Status < 500 {
			return 0, false
		}
		if apiErr.Status == http.StatusNotImplemented {
			return 0, false
		}
		if apiErr.RetryAfter > 0 {
			if apiErr.RetryAfter > c.cfg.MaxRetryWait {
				return 0, false
			}
			return apiErr.RetryAfter, true
		}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return 0, false
	case cl.submit && !dialFailed(err):
		return 0, false // the request may have reached the Horde
	}
	return backoff(attempt, c.cfg.MaxRetryWait), true
}

// backoff is full-jitter exponential backoff from 500 ms, capped at max.
func backoff(attempt int, max time.Duration) time.Duration {
	d := 500 * time.Millisecond << min(attempt, 10)
	if max > 0 && d > max {
		d = max
	}
	return d/2 + rand.N(d/2+1)
}

func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (c *Client) once(ctx context.Context, cl call, key string, payload []byte, out any) error {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, c.base+cl.path, body)
	if err != nil {
		return fmt.Errorf("build %s %s: %w", cl.method, cl.endpoint, err)
	}
	if payload == nil {
		// net/http silently sends a GET again when a reused connection
		// breaks before the answer, though the Horde may have counted it:
		// a status poll would hit the Horde twice at once, outside the
		// scheduler's pacing and budget. A body without GetBody turns that
		// off; being empty, it is not sent.
		req.Body = noResend{}
	}
	req.Header.Set("apikey", key)
	req.Header.Set("Client-Agent", c.clientAgent)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cfg.ProxyPasskey != "" {
		req.Header.Set("Proxy-Authorization", c.cfg.ProxyPasskey)
	}
	if cl.who.ProxiedFor != "" {
		req.Header.Set("Proxied-For", cl.who.ProxiedFor)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// url.Error carries only method and URL; keys travel in headers.
		if ctx.Err() != nil {
			return fmt.Errorf("horde %s %s: %w", cl.method, cl.endpoint, ctx.Err())
		}
		return fmt.Errorf("horde %s %s: %w: %w", cl.method, cl.endpoint, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("horde %s %s: read answer: %w: %w", cl.method, cl.endpoint, ErrUnavailable, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.apiError(cl, resp, raw, key)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("horde %s %s: decode answer: %w", cl.method, cl.endpoint, err)
	}
	return nil
}

func (c *Client) apiError(cl call, resp *http.Response, raw []byte, key string) *APIError {
	e := &APIError{Method: cl.method, Endpoint: cl.endpoint, Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var body struct {
		Message string            `json:"message"`
		RC      string            `json:"rc"`
		Errors  map[string]string `json:"errors"`
	}
	if json.Unmarshal(raw, &body) == nil && (body.Message != "" || body.RC != "") {
		e.Message, e.RC, e.Errors = body.Message, body.RC, body.Errors
	} else {
		e.Message = http.StatusText(resp.StatusCode)
	}
	secrets := []string{key, c.cfg.ProxyPasskey, c.cfg.APIKey}
	e.Message = scrub(e.Message, secrets...)
	for k, v := range e.Errors {
		e.Errors[k] = scrub(v, secrets...)
	}
	return e
}

// parseRetryAfter reads delta-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// noResend is an empty request body that net/http cannot rewind, so it
// never resends the request on its own; see Client.once.
type noResend struct{}

func (noResend) Read([]byte) (int, error) { return 0, io.EOF }
func (noResend) Close() error             { return nil }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
