package openai

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigValid(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if !cfg.Enabled || !cfg.AuthTokens || !cfg.AuthHordeKey || cfg.AuthAnonymous {
		t.Errorf("defaults = %+v", cfg)
	}
	if cfg.Heartbeat > 10*time.Second {
		t.Errorf("heartbeat %s above 10s", cfg.Heartbeat)
	}
}

func TestConfigValidateNamesKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Config)
		key    string
	}{
		{"body too small", func(c *Config) { c.MaxBodyBytes = 10 }, "openai.max_body_bytes"},
		{"max tokens below horde minimum", func(c *Config) { c.MaxTokens = 8 }, "openai.max_tokens"},
		{"max tokens too big", func(c *Config) { c.MaxTokens = 5000 }, "openai.max_tokens"},
		{"max n", func(c *Config) { c.MaxN = 21 }, "openai.max_n"},
		{"negative rate", func(c *Config) { c.RateLimitPerMinute = -1 }, "openai.rate_limit_per_minute"},
		{"zero burst", func(c *Config) { c.RateLimitBurst = 0 }, "openai.rate_limit_burst"},
		{"negative concurrency", func(c *Config) { c.MaxConcurrent = -1 }, "openai.max_concurrent"},
		{"heartbeat too slow", func(c *Config) { c.Heartbeat = 30 * time.Second }, "openai.heartbeat"},
		{"write timeout", func(c *Config) { c.WriteTimeout = 0 }, "openai.write_timeout"},
		{"read timeout", func(c *Config) { c.ReadTimeout = time.Hour }, "openai.read_timeout"},
		{"key cache", func(c *Config) { c.HordeKeyCacheTTL = -time.Second }, "openai.horde_key_cache_ttl"},
		{"nobody can call", func(c *Config) { c.AuthTokens, c.AuthHordeKey, c.AuthAnonymous = false, false, false }, "auth_tokens"},
		{"bad proxy", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/33"} }, "openai.trusted_proxies[0]"},
		{"empty allow glob", func(c *Config) { c.AllowModels = []string{" "} }, "openai.allow_models[0]"},
		{"empty deny glob", func(c *Config) { c.DenyModels = []string{"x", ""} }, "openai.deny_models[1]"},
		{"bad block regexp", func(c *Config) { c.BlockPrompts = []string{"ok", "(unclosed"} }, "openai.block_prompts[1]"},
		{"cors with path", func(c *Config) { c.CORSOrigins = []string{"https://x.example/app"} }, "openai.cors_origins[0]"},
		{"cors not a url", func(c *Config) { c.CORSOrigins = []string{"localhost"} }, "openai.cors_origins[0]"},
		{"public url with v1", func(c *Config) { c.PublicBaseURL = "https://x.example/v1" }, "openai.public_base_url"},
		{"public url scheme", func(c *Config) { c.PublicBaseURL = "ftp://x.example" }, "openai.public_base_url"},
		{"metrics token space", func(c *Config) { c.MetricsToken = "a b" }, "openai.metrics_token"},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		tt.change(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%s: %v, want an error naming %s", tt.name, err, tt.key)
		}
	}
	// A bad block rule's pattern is not echoed (operators may keep it private).
	cfg := DefaultConfig()
	cfg.BlockPrompts = []string{"(private-word"}
	if err := cfg.Validate(); err == nil || strings.Contains(err.Error(), "private-word") {
		t.Errorf("error echoes the rule: %v", err)
	}
	// Disabled needs no auth mode.
	cfg = DefaultConfig()
	cfg.Enabled, cfg.AuthTokens, cfg.AuthHordeKey = false, false, false
	if err := cfg.Validate(); err != nil {
		t.Errorf("disabled: %v", err)
	}
}

// TestConfigTags: every field has a koanf tag, and the one secret is marked.
func TestConfigTags(t *testing.T) {
	t.Parallel()
	ty := reflect.TypeOf(Config{})
	for i := range ty.NumField() {
		f := ty.Field(i)
		if f.Tag.Get("koanf") == "" {
			t.Errorf("%s has no koanf tag", f.Name)
		}
		if strings.Contains(strings.ToLower(f.Name), "token") && f.Name != "MaxTokens" && f.Name != "AuthTokens" && f.Tag.Get("secret") != "true" {
			t.Errorf("%s looks secret but is not tagged", f.Name)
		}
	}
}
