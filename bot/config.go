package bot

import (
	"fmt"
	"time"
)

// Config is the [chat] section: how the chat core behaves on every
// platform.
type Config struct {
	// SystemPrompt is the persona when neither the conversation nor the
	// user set one.
	SystemPrompt string `koanf:"system_prompt"`
	// HistoryMessages is how many stored messages are loaded per turn
	// (the bridge then trims them to the model's context).
	HistoryMessages int `koanf:"history_messages"`
	// UserRate and UserBurst limit chat requests per user.
	UserRate  time.Duration `koanf:"user_rate"` // one request per this long, on average
	UserBurst int           `koanf:"user_burst"`
	// UserConcurrency bounds a user's jobs in flight.
	UserConcurrency int `koanf:"user_concurrency"`
	// ProgressEvery is the shortest gap between two progress edits.
	ProgressEvery time.Duration `koanf:"progress_every"`
	// MaxProgressEdits bounds the edits of one placeholder.
	MaxProgressEdits int `koanf:"max_progress_edits"`
	// AttachOver sends answers longer than this many characters as a file
	// (when the platform can); 0 never does.
	AttachOver int `koanf:"attach_over"`
	// DMs allows direct conversations with the bot.
	DMs bool `koanf:"dms"`
	// AllowUsers, DenyUsers, AllowRoles, AllowChannels, DenyChannels,
	// AllowServers and DenyServers are platform ids ("discord:123" or a
	// bare id); an empty allow list allows everyone.
	AllowUsers    []string `koanf:"allow_users"`
	DenyUsers     []string `koanf:"deny_users"`
	AllowRoles    []string `koanf:"allow_roles"`
	AllowChannels []string `koanf:"allow_channels"`
	DenyChannels  []string `koanf:"deny_channels"`
	AllowServers  []string `koanf:"allow_servers"`
	DenyServers   []string `koanf:"deny_servers"`
	// Admins may use admin commands everywhere (platform user ids).
	Admins []string `koanf:"admins"`
	// PersonaAdminsOnly restricts /system to admins.
	PersonaAdminsOnly bool `koanf:"persona_admins_only"`
}

// DefaultConfig returns the [chat] defaults.
func DefaultConfig() Config {
	return Config{
		SystemPrompt:     "You are a helpful assistant in a group chat. Answer concisely.",
		HistoryMessages:  50,
		UserRate:         10 * time.Second,
		UserBurst:        3,
		UserConcurrency:  2,
		ProgressEvery:    3 * time.Second,
		MaxProgressEdits: 10,
		AttachOver:       6000,
		DMs:              true,
		AllowUsers:       []string{},
		DenyUsers:        []string{},
		AllowRoles:       []string{},
		AllowChannels:    []string{},
		DenyChannels:     []string{},
		AllowServers:     []string{},
		DenyServers:      []string{},
		Admins:           []string{},
	}
}

// Validate reports the first invalid value, naming its key.
func (c Config) Validate() error {
	switch {
	case c.HistoryMessages < 0 || c.HistoryMessages > 1000:
		return fmt.Errorf("chat.history_messages %d: must be between 0 and 1000", c.HistoryMessages)
	case c.UserRate < 0 || c.UserRate > time.Hour:
		return fmt.Errorf("chat.user_rate %s: must be between 0s (no limit) and 1h", c.UserRate)
	case c.UserBurst < 1 || c.UserBurst > 100:
		return fmt.Errorf("chat.user_burst %d: must be between 1 and 100", c.UserBurst)
	case c.UserConcurrency < 1 || c.UserConcurrency > 20:
		return fmt.Errorf("chat.user_concurrency %d: must be between 1 and 20", c.UserConcurrency)
	case c.ProgressEvery < time.Second || c.ProgressEvery > time.Minute:
		return fmt.Errorf("chat.progress_every %s: must be between 1s and 1m", c.ProgressEvery)
	case c.MaxProgressEdits < 0 || c.MaxProgressEdits > 100:
		return fmt.Errorf("chat.max_progress_edits %d: must be between 0 and 100", c.MaxProgressEdits)
	case c.AttachOver < 0:
		return fmt.Errorf("chat.attach_over %d: must be 0 (never) or a positive length", c.AttachOver)
	case len(c.SystemPrompt) > 8000:
		return fmt.Errorf("chat.system_prompt: %d characters; keep it under 8000", len(c.SystemPrompt))
	}
	return nil
}
