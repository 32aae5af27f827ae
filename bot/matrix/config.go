// Package matrix connects hordechat to Matrix through mautrix.
package matrix

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Config is the [matrix] section. The adapter is on when Homeserver and a
// credential (AccessToken or Password) are set.
type Config struct {
	// Homeserver is the client-server API base URL, e.g. https://matrix.org.
	Homeserver string `koanf:"homeserver"`
	// UserID is the bot's full user id, e.g. @hordechat:example.org.
	UserID string `koanf:"user_id"`
	// AccessToken logs in with an existing session.
	AccessToken string `koanf:"access_token" secret:"true"`
	// Password logs in on first start; the device and token are then kept.
	Password string `koanf:"password" secret:"true"`
}

// DefaultConfig returns the [matrix] defaults: off.
func DefaultConfig() Config { return Config{} }

// Enabled reports whether the configuration turns the adapter on.
func (c Config) Enabled() bool {
	return c.Homeserver != "" && (c.AccessToken != "" || c.Password != "")
}

// Validate reports the first invalid value, naming its key.
func (c Config) Validate() error {
	hasCred := c.AccessToken != "" || c.Password != ""
	if c.Homeserver == "" {
		if hasCred || c.UserID != "" {
			return errors.New("matrix.homeserver: must be set when matrix.user_id, matrix.access_token or matrix.password is (e.g. https://matrix.org)")
		}
		return nil
	}
	u, err := url.Parse(c.Homeserver)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("matrix.homeserver %q: must be an http(s) URL such as https://matrix.org", c.Homeserver)
	}
	if !hasCred {
		return errors.New("matrix.access_token or matrix.password: one must be set when matrix.homeserver is")
	}
	if c.UserID == "" {
		return errors.New("matrix.user_id: must be set when matrix.homeserver is (e.g. @hordechat:example.org)")
	}
	if !strings.HasPrefix(c.UserID, "@") || !strings.Contains(c.UserID, ":") {
		return fmt.Errorf("matrix.user_id %q: must look like @name:server", c.UserID)
	}
	return nil
}
