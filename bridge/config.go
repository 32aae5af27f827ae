package bridge

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/hordechat/hordechat/bridge/prompt"
	"github.com/hordechat/hordechat/hordeapi"
)

// TemplateOverride forces an instruct template on models matching a glob.
type TemplateOverride struct {
	Pattern  string `koanf:"pattern"`  // case-insensitive glob, e.g. "*stheno*"
	Template string `koanf:"template"` // a template name, e.g. "llama3"
}

// Config is the [bridge] section: how chat requests become Horde requests.
type Config struct {
	// DefaultModel is used when a request names no model; empty picks the
	// model with workers and the shortest queue.
	DefaultModel string `koanf:"default_model"`
	// DefaultMaxTokens is the answer length when the caller sets none.
	DefaultMaxTokens int `koanf:"default_max_tokens"`
	// MaxTokens caps any answer length (the Horde allows up to 4096).
	MaxTokens int `koanf:"max_tokens"`
	// MaxContext caps the context sent (the workers' best is used below it).
	MaxContext int `koanf:"max_context"`
	// MaxN caps the generations per request.
	MaxN int `koanf:"max_n"`
	// TrustedWorkers sends requests only to workers of trusted owners.
	TrustedWorkers bool `koanf:"trusted_workers"`
	// ValidatedBackends restricts to the worker software the Horde validates.
	ValidatedBackends bool `koanf:"validated_backends"`
	// ServiceAccount says the operator's key has the Horde service role, so
	// requests on it carry proxied_account (the Horde rejects it otherwise).
	ServiceAccount bool `koanf:"service_account"`
	// IdentitySecret keys the per-user Proxied-For addresses. Empty derives
	// it from the storage encryption key, which is stable and already kept.
	IdentitySecret string `koanf:"identity_secret" secret:"true"`
	// ModelRefresh is how often the model and worker lists are fetched.
	ModelRefresh time.Duration `koanf:"model_refresh"`
	// StatusCallsPerSecond is the budget of status polls shared by all jobs.
	StatusCallsPerSecond float64 `koanf:"status_calls_per_second"`
	// NotPossibleTimeout cancels a request no worker can serve for this long.
	NotPossibleTimeout time.Duration `koanf:"not_possible_timeout"`
	// JobTimeout gives up on a request that has not finished; keep it under
	// the Horde's 20-minute expiry.
	JobTimeout time.Duration `koanf:"job_timeout"`
	// ResubmitLost is how many times a request the Horde lost is resubmitted.
	ResubmitLost int `koanf:"resubmit_lost"`
	// WebhookURL is this server's public https base URL; when set, the Horde
	// posts results to it and polling only runs as a safety net.
	WebhookURL string `koanf:"webhook_url"`
	// TemplateOverrides pick instruct templates for model patterns, checked
	// before the built-in rules.
	TemplateOverrides []TemplateOverride `koanf:"template_overrides"`
}

// DefaultConfig returns the [bridge] defaults.
func DefaultConfig() Config {
	return Config{
		DefaultMaxTokens:     300,
		MaxTokens:            1024,
		MaxContext:           8192,
		MaxN:                 4,
		ValidatedBackends:    true,
		ModelRefresh:         time.Minute,
		StatusCallsPerSecond: 10,
		NotPossibleTimeout:   2 * time.Minute,
		JobTimeout:           18 * time.Minute,
		ResubmitLost:         1,
		TemplateOverrides:    []TemplateOverride{},
	}
}

// Validate reports the first invalid value, naming its key.
func (c Config) Validate() error {
	switch {
	case c.MaxTokens < hordeapi.MinMaxLength || c.MaxTokens > hordeapi.MaxMaxLength:
		return fmt.Errorf("bridge.max_tokens %d: must be between %d and %d", c.MaxTokens, hordeapi.MinMaxLength, hordeapi.MaxMaxLength)
	case c.DefaultMaxTokens < hordeapi.MinMaxLength || c.DefaultMaxTokens > c.MaxTokens:
		return fmt.Errorf("bridge.default_max_tokens %d: must be between %d and bridge.max_tokens (%d)", c.DefaultMaxTokens, hordeapi.MinMaxLength, c.MaxTokens)
	case c.MaxContext < 2*hordeapi.MinMaxContextLength || c.MaxContext > hordeapi.MaxMaxContextLength:
		return fmt.Errorf("bridge.max_context %d: must be between %d and %d", c.MaxContext, 2*hordeapi.MinMaxContextLength, hordeapi.MaxMaxContextLength)
	case c.MaxN < 1 || c.MaxN > hordeapi.MaxN:
		return fmt.Errorf("bridge.max_n %d: must be between 1 and %d", c.MaxN, hordeapi.MaxN)
	case c.IdentitySecret != "" && len(c.IdentitySecret) < 16:
		return errors.New("bridge.identity_secret: must be at least 16 characters (or empty to derive it from the storage key)")
	case c.ModelRefresh < 10*time.Second || c.ModelRefresh > time.Hour:
		return fmt.Errorf("bridge.model_refresh %s: must be between 10s and 1h", c.ModelRefresh)
	case c.StatusCallsPerSecond <= 0 || c.StatusCallsPerSecond > 100:
		return fmt.Errorf("bridge.status_calls_per_second %g: must be above 0 and at most 100", c.StatusCallsPerSecond)
	case c.NotPossibleTimeout < 10*time.Second || c.NotPossibleTimeout > 20*time.Minute:
		return fmt.Errorf("bridge.not_possible_timeout %s: must be between 10s and 20m", c.NotPossibleTimeout)
	case c.JobTimeout < time.Minute || c.JobTimeout > 20*time.Minute:
		return fmt.Errorf("bridge.job_timeout %s: must be between 1m and 20m (the Horde expires requests after 20m)", c.JobTimeout)
	case c.ResubmitLost < 0 || c.ResubmitLost > 5:
		return fmt.Errorf("bridge.resubmit_lost %d: must be between 0 and 5", c.ResubmitLost)
	}
	if c.WebhookURL != "" {
		u, err := url.Parse(c.WebhookURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("bridge.webhook_url %q: must be a public https URL (the Horde only posts to https); empty turns webhooks off", c.WebhookURL)
		}
	}
	reg := prompt.NewRegistry()
	for i, o := range c.TemplateOverrides {
		if _, err := path.Match(strings.ToLower(o.Pattern), ""); err != nil || o.Pattern == "" {
			return fmt.Errorf("bridge.template_overrides[%d].pattern %q: must be a glob such as \"*stheno*\"", i, o.Pattern)
		}
		if err := reg.Override(o.Pattern, o.Template); err != nil {
			return fmt.Errorf("bridge.template_overrides[%d].template %q: %w", i, o.Template, err)
		}
	}
	return nil
}
