// Package discord connects hordechat to Discord through discordgo.
package discord

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Config is the [discord] section. The adapter is on when Token is set.
type Config struct {
	// Token is the bot token from the Discord developer portal.
	Token string `koanf:"token" secret:"true"`
	// APIBaseURL is Discord's REST root; change it for a REST proxy.
	APIBaseURL string `koanf:"api_base_url"`
	// GuildID registers slash commands in one guild only (instant, for
	// development) instead of globally.
	GuildID string `koanf:"guild_id"`
}

// DefaultConfig returns the [discord] defaults: off.
func DefaultConfig() Config {
	return Config{APIBaseURL: "https://discord.com/api/v10"}
}

// Enabled reports whether the configuration turns the adapter on.
func (c Config) Enabled() bool { return c.Token != "" }

// Validate reports the first invalid value, naming its key.
func (c Config) Validate() error {
	if strings.ContainsAny(c.Token, " \t\r\n") {
		return errors.New("discord.token: contains white space; paste the bot token alone (without \"Bot \")")
	}
	u, err := url.Parse(c.APIBaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("discord.api_base_url %q: must be an http(s) URL such as https://discord.com/api/v10", c.APIBaseURL)
	}
	if c.GuildID != "" && strings.Trim(c.GuildID, "0123456789") != "" {
		return fmt.Errorf("discord.guild_id %q: must be a numeric guild id (enable developer mode, right-click the server, Copy Server ID)", c.GuildID)
	}
	return nil
}
