package openai

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"
)

// Config is the [openai] section: the embedded OpenAI-compatible /v1
// endpoint on the built-in HTTP listener (http.listen decides where it is
// reachable; 127.0.0.1 by default).
type Config struct {
	// Enabled serves /v1. When false, /v1 answers 404 and only the status
	// page, /healthz, /readyz and /metrics remain.
	Enabled bool `koanf:"enabled"`

	// AuthTokens accepts personal tokens ("Authorization: Bearer hc_...")
	// that users create in chat; requests then run as that user, with the
	// Horde key they linked.
	AuthTokens bool `koanf:"auth_tokens"`
	// AuthHordeKey accepts a caller's own AI Horde API key as the bearer
	// token, like the official OpenAI proxy; the key is checked with the
	// Horde once and cached.
	AuthHordeKey bool `koanf:"auth_horde_key"`
	// AuthAnonymous serves callers without a token on the Horde's anonymous
	// key (lowest priority), identified by their IP address. The anonymous
	// key "0000000000" given as a bearer token counts as anonymous too.
	// Anonymous and Horde-key callers' public addresses go to the Horde as
	// Proxied-For; loopback and private ones are not forwarded (the Horde
	// then sees this server's address).
	AuthAnonymous bool `koanf:"auth_anonymous"`

	// TrustedProxies are CIDRs (or single addresses) of reverse proxies
	// whose X-Forwarded-For and X-Real-IP headers are believed. From any
	// other peer those headers are ignored.
	TrustedProxies []string `koanf:"trusted_proxies"`

	// MaxBodyBytes bounds a request body; larger ones get 413.
	MaxBodyBytes int `koanf:"max_body_bytes"`
	// MaxTokens caps max_tokens (larger values are lowered, and the answer
	// may end with finish_reason "length"); 0 leaves the cap to
	// bridge.max_tokens.
	MaxTokens int `koanf:"max_tokens"`
	// MaxN is the largest n (generations per request) accepted.
	MaxN int `koanf:"max_n"`

	// RateLimitPerMinute is the sustained request rate per caller (a
	// token, a Horde key, or an anonymous IP address); 0 turns it off.
	RateLimitPerMinute int `koanf:"rate_limit_per_minute"`
	// RateLimitBurst is how many requests a caller may send at once
	// before the rate applies.
	RateLimitBurst int `koanf:"rate_limit_burst"`
	// MaxConcurrent is how many jobs one caller may have running at once;
	// 0 means no limit.
	MaxConcurrent int `koanf:"max_concurrent"`

	// AllowModels, when not empty, lists the only models served, as
	// case-insensitive globs where * matches anything ("koboldcpp/*",
	// "*llama-3*").
	AllowModels []string `koanf:"allow_models"`
	// DenyModels lists models never served (globs); it wins over AllowModels.
	DenyModels []string `koanf:"deny_models"`
	// BlockPrompts are regular expressions (RE2 syntax; add (?i) to ignore
	// case); a request whose messages or prompt match one is refused with a
	// message that does not say which rule matched.
	BlockPrompts []string `koanf:"block_prompts"`

	// CORSOrigins are the browser origins allowed to call /v1
	// ("https://lite.koboldai.net"); "*" allows any. Empty allows none:
	// browser tools then need to go through their own backend.
	CORSOrigins []string `koanf:"cors_origins"`

	// Heartbeat is how often a waiting stream gets an SSE comment saying
	// where its job is, which also keeps proxies from closing it.
	Heartbeat time.Duration `koanf:"heartbeat"`
	// WriteTimeout bounds each write to a client (a stream chunk, or the
	// final answer). The server-wide http.Server WriteTimeout must not be
	// set below the job timeout; this one is applied per request instead.
	WriteTimeout time.Duration `koanf:"write_timeout"`
	// ReadTimeout bounds reading a request body.
	ReadTimeout time.Duration `koanf:"read_timeout"`

	// HordeKeyCacheTTL is how long a Horde key that find_user accepted is
	// trusted before it is checked again. Rejected keys are remembered for
	// a minute.
	HordeKeyCacheTTL time.Duration `koanf:"horde_key_cache_ttl"`

	// PublicBaseURL is how callers reach this server (e.g.
	// "https://horde.example.org"), used in the status page examples.
	// Empty derives it from each request.
	PublicBaseURL string `koanf:"public_base_url"`
	// MetricsToken, when set, is required as "Authorization: Bearer" on
	// /metrics.
	MetricsToken string `koanf:"metrics_token" secret:"true"`
}

// DefaultConfig returns the [openai] defaults: on, personal tokens and
// Horde keys accepted, anonymous callers refused.
func DefaultConfig() Config {
	return Config{
		Enabled:            true,
		AuthTokens:         true,
		AuthHordeKey:       true,
		AuthAnonymous:      false,
		TrustedProxies:     []string{},
		MaxBodyBytes:       2 << 20,
		MaxTokens:          0,
		MaxN:               4,
		RateLimitPerMinute: 30,
		RateLimitBurst:     10,
		MaxConcurrent:      3,
		AllowModels:        []string{},
		DenyModels:         []string{},
		BlockPrompts:       []string{},
		CORSOrigins:        []string{},
		Heartbeat:          5 * time.Second,
		WriteTimeout:       30 * time.Second,
		ReadTimeout:        30 * time.Second,
		HordeKeyCacheTTL:   10 * time.Minute,
	}
}

// Validate reports the first invalid value, naming its key.
func (c Config) Validate() error {
	switch {
	case c.MaxBodyBytes < 1<<10 || c.MaxBodyBytes > 64<<20:
		return fmt.Errorf("openai.max_body_bytes %d: must be between 1024 and 67108864 (64 MiB)", c.MaxBodyBytes)
	case c.MaxTokens < 0 || c.MaxTokens > 4096:
		return fmt.Errorf("openai.max_tokens %d: must be between 0 (use bridge.max_tokens) and 4096", c.MaxTokens)
	case c.MaxTokens > 0 && c.MaxTokens < 16:
		return fmt.Errorf("openai.max_tokens %d: the Horde generates at least 16 tokens; use 16 or more, or 0", c.MaxTokens)
	case c.MaxN < 1 || c.MaxN > 20:
		return fmt.Errorf("openai.max_n %d: must be between 1 and 20", c.MaxN)
	case c.RateLimitPerMinute < 0 || c.RateLimitPerMinute > 100000:
		return fmt.Errorf("openai.rate_limit_per_minute %d: must be between 0 (off) and 100000", c.RateLimitPerMinute)
	case c.RateLimitPerMinute > 0 && (c.RateLimitBurst < 1 || c.RateLimitBurst > 100000):
		return fmt.Errorf("openai.rate_limit_burst %d: must be between 1 and 100000", c.RateLimitBurst)
	case c.MaxConcurrent < 0 || c.MaxConcurrent > 10000:
		return fmt.Errorf("openai.max_concurrent %d: must be between 0 (no limit) and 10000", c.MaxConcurrent)
	case c.Heartbeat < 10*time.Millisecond || c.Heartbeat > 10*time.Second:
		return fmt.Errorf("openai.heartbeat %s: must be between 10ms and 10s (clients and proxies drop streams that stay silent longer)", c.Heartbeat)
	case c.WriteTimeout < time.Second || c.WriteTimeout > 10*time.Minute:
		return fmt.Errorf("openai.write_timeout %s: must be between 1s and 10m", c.WriteTimeout)
	case c.ReadTimeout < time.Second || c.ReadTimeout > 10*time.Minute:
		return fmt.Errorf("openai.read_timeout %s: must be between 1s and 10m", c.ReadTimeout)
	case c.HordeKeyCacheTTL < 0 || c.HordeKeyCacheTTL > 24*time.Hour:
		return fmt.Errorf("openai.horde_key_cache_ttl %s: must be between 0s (check every request) and 24h", c.HordeKeyCacheTTL)
	case c.Enabled && !c.AuthTokens && !c.AuthHordeKey && !c.AuthAnonymous:
		return errors.New("openai: auth_tokens, auth_horde_key and auth_anonymous are all false, so nobody could call /v1; enable one, or set openai.enabled = false")
	case strings.ContainsAny(c.MetricsToken, " \t\r\n"):
		return errors.New("openai.metrics_token: contains white space; paste the token alone")
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		return err
	}
	for i, g := range c.AllowModels {
		if strings.TrimSpace(g) == "" {
			return fmt.Errorf("openai.allow_models[%d]: must not be empty", i)
		}
	}
	for i, g := range c.DenyModels {
		if strings.TrimSpace(g) == "" {
			return fmt.Errorf("openai.deny_models[%d]: must not be empty", i)
		}
	}
	for i, p := range c.BlockPrompts {
		if p == "" {
			return fmt.Errorf("openai.block_prompts[%d]: must not be empty", i)
		}
		if _, err := regexp.Compile(p); err != nil {
			// Show the parser's reason, not the pattern: operators may keep
			// the list itself out of logs.
			return fmt.Errorf("openai.block_prompts[%d]: not a valid regular expression: %s", i, regexpReason(err))
		}
	}
	for i, o := range c.CORSOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("openai.cors_origins[%d] %q: must be \"*\" or an origin such as https://lite.koboldai.net (scheme and host, no path)", i, o)
		}
	}
	if c.PublicBaseURL != "" {
		u, err := url.Parse(c.PublicBaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("openai.public_base_url %q: must be an http(s) URL such as https://horde.example.org (empty derives it from each request)", c.PublicBaseURL)
		}
		if strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/v1") {
			return fmt.Errorf("openai.public_base_url %q: leave out the /v1 suffix", c.PublicBaseURL)
		}
	}
	return nil
}

func regexpReason(err error) string {
	var re *syntax.Error
	if errors.As(err, &re) {
		return string(re.Code)
	}
	return "invalid syntax"
}

// parsePrefixes parses trusted proxy entries: CIDRs or single addresses.
func parsePrefixes(entries []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(entries))
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(e); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		return nil, fmt.Errorf("openai.trusted_proxies[%d] %q: must be a CIDR such as 10.0.0.0/8 or an address such as 127.0.0.1", i, e)
	}
	return out, nil
}
