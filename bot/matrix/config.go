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
	// Password logs in on first start; the device and token are then kept
	// in SessionFile.
	Password string `koanf:"password" secret:"true"`
	// SessionFile keeps the device id and access token of a password login
	// (JSON, mode 0600). cmd sets it beside the database when empty; left
	// empty, a password login happens on every start (a new device each
	// time).
	SessionFile string `koanf:"session_file"`
	// DeviceName is the display name of the device a password login
	// creates.
	DeviceName string `koanf:"device_name"`
	// CommandPrefix starts a text command: "!" makes "!chat hello".
	CommandPrefix string `koanf:"command_prefix"`
	// Threads answers a mention in a group room in a thread started on
	// the triggering message; off answers in the room as a reply.
	Threads bool `koanf:"threads"`
	// InviteServers are the homeservers whose users may invite the bot;
	// "*" is any server; empty means the bot's own homeserver only.
	InviteServers []string `koanf:"invite_servers"`
	// InviteUsers, when set, are the only users (full ids) that may invite
	// the bot; their homeserver must be allowed too.
	InviteUsers []string `koanf:"invite_users"`
	// MaxEdits bounds the progress edits (m.replace) of one message; the
	// edit that puts the answer in place is always allowed.
	MaxEdits int `koanf:"max_edits"`
	// Workers is how many events are handled at once; the sync loop only
	// queues them.
	Workers int `koanf:"workers"`
	// Encryption turns on end-to-end encryption (needs a build with
	// -tags goolm): the bot reads and answers in encrypted rooms and DMs.
	// Its keys are kept in CryptoDatabase, pickled with PickleKey.
	Encryption bool `koanf:"encryption"`
	// CryptoDatabase is the SQLite file of the encryption keys; empty
	// means matrix-crypto.db beside SessionFile.
	CryptoDatabase string `koanf:"crypto_database"`
	// PickleKey encrypts the keys at rest; empty means a random key made
	// once and kept in matrix-pickle.key (mode 0600) beside SessionFile.
	// Losing it loses the keys (the bot then needs a new device).
	PickleKey string `koanf:"pickle_key" secret:"true"`
}

// DefaultConfig returns the [matrix] defaults: off.
func DefaultConfig() Config {
	return Config{
		DeviceName:    "hordechat",
		CommandPrefix: "!",
		Threads:       true,
		MaxEdits:      10,
		Workers:       4,
		InviteServers: []string{},
		InviteUsers:   []string{},
	}
}

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
	if !validUserID(c.UserID) {
		return fmt.Errorf("matrix.user_id %q: must look like @name:server", c.UserID)
	}
	if strings.ContainsAny(c.AccessToken, " \t\r\n") {
		return errors.New("matrix.access_token: contains white space; paste the token alone")
	}
	if c.CommandPrefix == "" || strings.ContainsAny(c.CommandPrefix, " \t\r\n") || len(c.CommandPrefix) > 8 {
		return fmt.Errorf("matrix.command_prefix %q: must be 1 to 8 characters without spaces, such as \"!\"", c.CommandPrefix)
	}
	for _, s := range c.InviteServers {
		if s == "" || strings.ContainsAny(s, " /@") {
			return fmt.Errorf("matrix.invite_servers: %q is not a server name such as example.org (or *)", s)
		}
	}
	for _, s := range c.InviteUsers {
		if !validUserID(s) {
			return fmt.Errorf("matrix.invite_users: %q must look like @name:server", s)
		}
	}
	if c.MaxEdits < 0 || c.MaxEdits > 100 {
		return fmt.Errorf("matrix.max_edits %d: must be between 0 and 100", c.MaxEdits)
	}
	if c.Encryption && c.SessionFile == "" && c.CryptoDatabase == "" {
		return errors.New("matrix.encryption: needs matrix.session_file or matrix.crypto_database, where the encryption keys are kept")
	}
	if c.Workers < 1 || c.Workers > 64 {
		return fmt.Errorf("matrix.workers %d: must be between 1 and 64", c.Workers)
	}
	return nil
}

func validUserID(s string) bool {
	local, server, ok := strings.Cut(strings.TrimPrefix(s, "@"), ":")
	return strings.HasPrefix(s, "@") && ok && local != "" && server != ""
}
