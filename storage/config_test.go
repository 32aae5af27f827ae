package storage_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hordechat/hordechat/storage"
	"github.com/hordechat/hordechat/storage/storagetest"
)

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := storage.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	if cfg.Path != "data/hordechat.db" || cfg.MaxOpenConns != 4 || cfg.MessageRetention != 0 || cfg.JobRetention != 168*time.Hour ||
		cfg.BusyTimeout != 5*time.Second || cfg.BusyRetryFor != time.Minute {
		t.Errorf("DefaultConfig() = %+v", cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	const secretish = "c2VjcmV0LXNob3J0" // base64 of "secret-short", 12 bytes
	tests := []struct {
		name   string
		modify func(*storage.Config)
		want   []string // substrings of the error; none means valid
	}{
		{"default", func(*storage.Config) {}, nil},
		{"test key", func(c *storage.Config) { c.EncryptionKey = storagetest.Key }, nil},
		{"raw url base64 key", func(c *storage.Config) {
			c.EncryptionKey = strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(storagetest.Key), "=")
		}, nil},
		{"bounds", func(c *storage.Config) { c.MaxOpenConns = 64; c.MessageRetention = time.Hour }, nil},
		{"empty path", func(c *storage.Config) { c.Path = " " }, []string{"storage.path", "empty"}},
		{"memory path", func(c *storage.Config) { c.Path = ":memory:" }, []string{"storage.path", `":memory:"`}},
		{"uri path", func(c *storage.Config) { c.Path = "file:x.db" }, []string{"storage.path", `"file:x.db"`}},
		{"zero conns", func(c *storage.Config) { c.MaxOpenConns = 0 }, []string{"storage.max_open_conns", "0", "1 to 64"}},
		{"too many conns", func(c *storage.Config) { c.MaxOpenConns = 65 }, []string{"storage.max_open_conns", "65", "1 to 64"}},
		{"negative message retention", func(c *storage.Config) { c.MessageRetention = -time.Hour },
			[]string{"storage.message_retention", "-1h0m0s", "keep forever"}},
		{"negative job retention", func(c *storage.Config) { c.JobRetention = -time.Minute },
			[]string{"storage.job_retention", "-1m0s", "keep forever"}},
		{"busy bounds", func(c *storage.Config) { c.BusyTimeout = 10 * time.Minute; c.BusyRetryFor = 24 * time.Hour }, nil},
		{"busy zero", func(c *storage.Config) { c.BusyTimeout = 0; c.BusyRetryFor = 0 }, nil},
		{"busy timeout below a millisecond", func(c *storage.Config) { c.BusyTimeout = time.Microsecond },
			[]string{"storage.busy_timeout", "1µs", "1ms to 10m0s"}},
		{"busy timeout too long", func(c *storage.Config) { c.BusyTimeout = time.Hour },
			[]string{"storage.busy_timeout", "1h0m0s", "1ms to 10m0s"}},
		{"negative busy retry", func(c *storage.Config) { c.BusyRetryFor = -time.Second },
			[]string{"storage.busy_retry_for", "-1s", "0 (never retry a locked write) to 24h0m0s"}},
		{"busy retry too long", func(c *storage.Config) { c.BusyRetryFor = 25 * time.Hour },
			[]string{"storage.busy_retry_for", "25h0m0s", "24h0m0s"}},
		{"key not base64", func(c *storage.Config) { c.EncryptionKey = "not base64!" },
			[]string{"storage.encryption_key", "not valid base64", "32"}},
		{"key too short", func(c *storage.Config) { c.EncryptionKey = secretish },
			[]string{"storage.encryption_key", "12 bytes", "32"}},
		{"several at once", func(c *storage.Config) { c.MaxOpenConns = -1; c.JobRetention = -1 },
			[]string{"storage.max_open_conns", "storage.job_retention"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := storage.DefaultConfig()
			tt.modify(&cfg)
			err := cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			if cfg.EncryptionKey != "" && strings.Contains(err.Error(), cfg.EncryptionKey) {
				t.Errorf("Validate() = %q echoes the key", err)
			}
		})
	}
}

func TestConfigHidesKey(t *testing.T) {
	cfg := storagetest.Config(t)
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "storage", cfg)
	for name, out := range map[string]string{
		"%v":  fmt.Sprintf("%v", cfg),
		"%+v": fmt.Sprintf("%+v", cfg),
		"%#v": fmt.Sprintf("%#v", cfg),
		"%s":  cfg.String(),
		"log": logged.String(),
	} {
		if strings.Contains(out, storagetest.Key) {
			t.Errorf("%s shows the key: %s", name, out)
		}
		if !strings.Contains(out, "redacted") {
			t.Errorf("%s = %s, want the key shown as redacted", name, out)
		}
	}
}
