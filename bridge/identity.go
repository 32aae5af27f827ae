package bridge

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"net/netip"
	"strings"
)

// Principal is who asks for a generation.
type Principal struct {
	// Platform is "discord", "matrix" or "v1".
	Platform string
	// UserID is the platform's stable user id; empty for an anonymous /v1
	// caller.
	UserID string
	// StoreUserID is the storage user id, when the person is known there
	// (chat users, /v1 personal tokens); 0 otherwise.
	StoreUserID int64
	// ClientIP is the real address of an anonymous /v1 caller, already
	// resolved through trusted proxies only.
	ClientIP string
	// APIKey is a Horde key the caller brought itself (/v1 pass-through).
	// It is never persisted; empty means "resolve": linked key, operator
	// key, anonymous.
	APIKey string
}

// Account is the Horde-facing name of a chat principal: "platform:user_id".
func (p Principal) Account() string {
	if p.UserID == "" {
		return ""
	}
	return p.Platform + ":" + p.UserID
}

// String names the principal for logs without any key.
func (p Principal) String() string {
	switch {
	case p.UserID != "":
		return p.Account()
	case p.ClientIP != "":
		return p.Platform + ":ip"
	default:
		return p.Platform + ":anonymous"
	}
}

// Identities derives the addresses forwarded to the Horde as Proxied-For.
type Identities struct {
	secret []byte
}

// NewIdentities returns a deriver keyed by secret, which must stay the same
// across restarts (or every user's Horde identity changes).
func NewIdentities(secret []byte) (*Identities, error) {
	if len(secret) < 16 {
		return nil, errors.New("identity secret: need at least 16 bytes")
	}
	return &Identities{secret: append([]byte(nil), secret...)}, nil
}

// ProxiedFor returns the address to forward for p: the HMAC pseudo-address
// for a chat user, the real client IP for an anonymous /v1 caller, or ""
// when there is nothing to forward.
func (ids *Identities) ProxiedFor(p Principal) string {
	if acct := p.Account(); acct != "" {
		return ids.PseudoAddress(acct).String()
	}
	if ip, err := netip.ParseAddr(strings.TrimSpace(p.ClientIP)); err == nil {
		return ip.Unmap().String()
	}
	return ""
}

// PseudoAddress maps an account ("platform:user_id") to a stable address in
// the IPv6 unique-local range fd00::/8. The distinguishing bits fill the
// first 64 bits, because the Horde may merge IPv6 addresses by /64; the
// low 64 bits are derived too, so the value looks like any other host. It
// cannot be reversed to the account without the secret.
func (ids *Identities) PseudoAddress(account string) netip.Addr {
	mac := hmac.New(sha256.New, ids.secret)
	mac.Write([]byte("hordechat proxied-for v1\x00"))
	mac.Write([]byte(account))
	sum := mac.Sum(nil)
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:], sum[:15])
	return netip.AddrFrom16(a)
}
