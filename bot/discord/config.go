package discord

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config is the [discord] section. The adapter is on when Token is set.
type Config struct {
	// Token is the bot token from the Discord developer portal.
	Token string `koanf:"token" secret:"true"`
	// APIBaseURL is Discord's REST root; change it for a REST proxy such
	// as nirn-proxy. The gateway URL still comes from Discord's answer to
	// GET /gateway.
	APIBaseURL string `koanf:"api_base_url"`
	// GuildID registers slash commands in one guild only (instant, for
	// development) instead of globally.
	GuildID string `koanf:"guild_id"`
	// MessageContent requests the privileged Message Content intent (turn
	// it on in the developer portal first). Without it mentions, replies
	// that ping the bot, DMs and slash commands still work; only messages
	// in the bot's threads that do not mention it stay unreadable.
	MessageContent bool `koanf:"message_content"`
	// Threads answers a mention in a channel in a new thread started from
	// that message; off answers in the channel itself.
	Threads bool `koanf:"threads"`
	// ThreadArchive is how long an idle thread stays open: 1h, 24h, 72h
	// or 168h (the values Discord accepts).
	ThreadArchive time.Duration `koanf:"thread_archive"`
	// ShardID and ShardCount split the bot's guilds over processes. Only
	// shard 0 registers the slash commands (and receives DMs).
	ShardID    int `koanf:"shard_id"`
	ShardCount int `koanf:"shard_count"`
}

// DefaultConfig returns the [discord] defaults: off.
func DefaultConfig() Config {
	return Config{
		APIBaseURL:    "https://discord.com/api/v10",
		Threads:       true,
		ThreadArchive: 24 * time.Hour,
		ShardCount:    1,
	}
}

// Enabled reports whether the configuration turns the adapter on.
func (c Config) Enabled() bool { return c.Token != "" }

// Validate reports the first invalid value, naming its key.
func (c Config) Validate() error {
	if strings.ContainsAny(c.Token, " \t\r\n") {
		return errors.New("discord.token: contains white space; paste the bot token alone (without \"Bot \")")
	}
	u, err := url.Parse(c.APIBaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("discord.api_base_url %q: must be an http(s) URL such as https://discord.com/api/v10", c.APIBaseURL)
	}
	if c.GuildID != "" && strings.Trim(c.GuildID, "0123456789") != "" {
		return fmt.Errorf("discord.guild_id %q: must be a numeric guild id (enable developer mode, right-click the server, Copy Server ID)", c.GuildID)
	}
	switch c.ThreadArchive {
	case time.Hour, 24 * time.Hour, 72 * time.Hour, 168 * time.Hour:
	default:
		return fmt.Errorf("discord.thread_archive %s: must be 1h, 24h, 72h or 168h", c.ThreadArchive)
	}
	if c.ShardCount < 1 {
		return fmt.Errorf("discord.shard_count %d: must be at least 1", c.ShardCount)
	}
	if c.ShardID < 0 || c.ShardID >= c.ShardCount {
		return fmt.Errorf("discord.shard_id %d: must be between 0 and shard_count-1 (%d)", c.ShardID, c.ShardCount-1)
	}
	return nil
}
