package storage

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Config configures the store. The cmd layer loads it with koanf under the
// "storage" key.
type Config struct {
	// Path is the SQLite database file. Its directory is created (0700) if
	// missing; the key file and the -wal/-shm files live beside it.
	Path string `koanf:"path"`
	// EncryptionKey is the base64 of the 32-byte key that seals linked Horde
	// keys. The cmd layer also fills it from encryption_key_file. When empty,
	// the key is read from (or on first run written to) a file named
	// hordechat.key beside the database.
	EncryptionKey string `koanf:"encryption_key" secret:"true"`
	// MaxOpenConns bounds the connection pool (1 to 64).
	MaxOpenConns int `koanf:"max_open_conns"`
	// MessageRetention is how long chat history is kept; 0 keeps it forever.
	MessageRetention time.Duration `koanf:"message_retention"`
	// JobRetention is how long finished job journal entries are kept; 0
	// keeps them forever.
	JobRetention time.Duration `koanf:"job_retention"`
	// BusyTimeout is how long SQLite itself waits for a lock another
	// connection holds before a statement fails with "database is locked"
	// (0, or 1ms to 10m; whole milliseconds).
	BusyTimeout time.Duration `koanf:"busy_timeout"`
	// BusyRetryFor bounds how long a write keeps retrying while another
	// process holds the write lock (0 retries never, up to 24h).
	BusyRetryFor time.Duration `koanf:"busy_retry_for"`
}

const (
	minOpenConns = 1
	maxOpenConns = 64
	// maxBusyTimeout bounds storage.busy_timeout: one statement should not
	// sit in SQLite's busy handler longer; the write retries do the rest.
	maxBusyTimeout = 10 * time.Minute
	// maxBusyRetryFor bounds storage.busy_retry_for.
	maxBusyRetryFor = 24 * time.Hour
	// keyFileName is the data key file used when no key is configured.
	keyFileName = "hordechat.key"
)

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Path:             "data/hordechat.db",
		MaxOpenConns:     4,
		MessageRetention: 0,
		JobRetention:     168 * time.Hour,
		BusyTimeout:      5 * time.Second,
		BusyRetryFor:     time.Minute,
	}
}

// Validate reports every invalid field at once. Errors name the key, the bad
// value and what is allowed, except for the encryption key, whose value is
// never echoed.
func (c Config) Validate() error {
	var errs []error
	switch {
	case strings.TrimSpace(c.Path) == "":
		errs = append(errs, errors.New(`storage.path: "" is empty; want the path of the database file, e.g. "data/hordechat.db"`))
	case c.Path == ":memory:" || strings.HasPrefix(c.Path, "file:"):
		errs = append(errs, fmt.Errorf("storage.path: %q is not a plain file path; want the path of the database file (in-memory and URI names are not supported)", c.Path))
	}
	if c.EncryptionKey != "" {
		if _, err := decodeKey(c.EncryptionKey); err != nil {
			errs = append(errs, fmt.Errorf("storage.encryption_key: %w", err))
		}
	}
	if c.MaxOpenConns < minOpenConns || c.MaxOpenConns > maxOpenConns {
		errs = append(errs, fmt.Errorf("storage.max_open_conns: %d is out of range; want %d to %d", c.MaxOpenConns, minOpenConns, maxOpenConns))
	}
	if c.MessageRetention < 0 {
		errs = append(errs, fmt.Errorf("storage.message_retention: %s is negative; want 0 (keep forever) or a positive duration such as 720h", c.MessageRetention))
	}
	if c.JobRetention < 0 {
		errs = append(errs, fmt.Errorf("storage.job_retention: %s is negative; want 0 (keep forever) or a positive duration such as 168h", c.JobRetention))
	}
	if c.BusyTimeout != 0 && (c.BusyTimeout < time.Millisecond || c.BusyTimeout > maxBusyTimeout) {
		errs = append(errs, fmt.Errorf("storage.busy_timeout: %s is out of range; want 0 (no waiting in SQLite) or 1ms to %s, e.g. 5s", c.BusyTimeout, maxBusyTimeout))
	}
	if c.BusyRetryFor < 0 || c.BusyRetryFor > maxBusyRetryFor {
		errs = append(errs, fmt.Errorf("storage.busy_retry_for: %s is out of range; want 0 (never retry a locked write) to %s, e.g. 1m", c.BusyRetryFor, maxBusyRetryFor))
	}
	return errors.Join(errs...)
}

// String describes the config without the encryption key, so that printing
// a Config with %v or %+v cannot leak it.
func (c Config) String() string {
	return fmt.Sprintf("{Path:%q EncryptionKey:%s MaxOpenConns:%d MessageRetention:%s JobRetention:%s BusyTimeout:%s BusyRetryFor:%s}",
		c.Path, redact(c.EncryptionKey), c.MaxOpenConns, c.MessageRetention, c.JobRetention, c.BusyTimeout, c.BusyRetryFor)
}

// GoString is String for %#v.
func (c Config) GoString() string { return "storage.Config" + c.String() }

// LogValue keeps the encryption key out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("path", c.Path),
		slog.String("encryption_key", redact(c.EncryptionKey)),
		slog.Int("max_open_conns", c.MaxOpenConns),
		slog.Duration("message_retention", c.MessageRetention),
		slog.Duration("job_retention", c.JobRetention),
		slog.Duration("busy_timeout", c.BusyTimeout),
		slog.Duration("busy_retry_for", c.BusyRetryFor),
	)
}

func redact(secret string) string {
	if secret == "" {
		return "(unset)"
	}
	return "(redacted)"
}

// decodeKey parses a base64 data key. Its errors never contain the input.
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != keySize {
				return nil, fmt.Errorf("value (not shown) decodes to %d bytes; want base64 of exactly %d random bytes, e.g. from `openssl rand -base64 32`", len(b), keySize)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("value (not shown) is not valid base64; want base64 of %d random bytes, e.g. from `openssl rand -base64 32`", keySize)
}
