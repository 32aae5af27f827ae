package openai

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/hordeapi"
)

// TokenPrefix starts every personal token (storage.APITokenPrefix).
const TokenPrefix = "hc_"

// ErrUnknownToken is what a TokenStore returns (possibly wrapped) for a
// token that does not exist or was revoked.
var ErrUnknownToken = errors.New("unknown personal token")

// TokenUser is the person a personal token belongs to.
type TokenUser struct {
	Platform       string // "discord", "matrix"
	PlatformUserID string // the platform's id of the user
	StoreUserID    int64  // the storage id, which finds the linked Horde key
}

// TokenStore resolves personal tokens. The cmd layer adapts
// storage.UserByAPIToken to it, mapping storage.ErrNotFound to
// ErrUnknownToken.
type TokenStore interface {
	LookupToken(ctx context.Context, token string) (TokenUser, error)
}

// TokenStoreFunc adapts a function to TokenStore.
type TokenStoreFunc func(ctx context.Context, token string) (TokenUser, error)

// LookupToken calls f.
func (f TokenStoreFunc) LookupToken(ctx context.Context, token string) (TokenUser, error) {
	return f(ctx, token)
}

// KeyChecker validates a caller's own Horde key; *hordeapi.Client is one.
type KeyChecker interface {
	FindUser(ctx context.Context, who hordeapi.Caller) (*hordeapi.UserDetails, error)
}

// AuthKind says how a caller authenticated; it labels metrics, so it has
// few values.
type AuthKind string

// The ways to call /v1.
const (
	AuthToken     AuthKind = "token"
	AuthHordeKey  AuthKind = "horde_key"
	AuthAnonymous AuthKind = "anonymous"
)

// caller is an authenticated request's identity.
type caller struct {
	kind      AuthKind
	principal bridge.Principal
	// limitKey identifies the caller for rate and concurrency limits; it
	// never holds a key or token in clear.
	limitKey string
}

// authenticate decides who is calling. It never echoes the credential.
func (s *Server) authenticate(r *http.Request, clientIP netip.Addr) (*caller, *apiError) {
	cred, hasCred, bad := bearer(r)
	if bad {
		return nil, authError("The Authorization header must be \"Bearer <token>\", with a hordechat token (hc_...) or an AI Horde API key.")
	}
	ip := forwardable(clientIP)
	if !hasCred || cred == hordeapi.AnonymousKey {
		if !s.cfg.AuthAnonymous {
			return nil, authError(s.noCredentialMessage())
		}
		return &caller{
			kind:      AuthAnonymous,
			principal: bridge.Principal{Platform: "v1", ClientIP: ip, APIKey: hordeapi.AnonymousKey},
			limitKey:  "ip:" + limitAddr(clientIP),
		}, nil
	}
	if strings.HasPrefix(cred, TokenPrefix) {
		if !s.cfg.AuthTokens || s.tokens == nil {
			return nil, authError("Personal hordechat tokens are not accepted on this server.")
		}
		u, err := s.tokens.LookupToken(r.Context(), cred)
		if errors.Is(err, ErrUnknownToken) {
			return nil, &apiError{Status: 401, Type: "authentication_error", Code: "invalid_api_key", Message: "This hordechat token is not valid (it may have been revoked). Create a new one in chat."}
		}
		if err != nil {
			s.log.Error("token lookup failed", "err", err)
			return nil, &apiError{Status: 503, Type: "server_error", Code: "unavailable", Message: "Could not check the token right now. Try again in a moment."}
		}
		return &caller{
			kind:      AuthToken,
			principal: bridge.Principal{Platform: u.Platform, UserID: u.PlatformUserID, StoreUserID: u.StoreUserID},
			limitKey:  "user:" + u.Platform + ":" + u.PlatformUserID,
		}, nil
	}
	if !s.cfg.AuthHordeKey || s.keys == nil {
		return nil, authError("AI Horde API keys are not accepted as tokens on this server; use a personal hordechat token (hc_...).")
	}
	h := sha256.Sum256([]byte(cred))
	limitKey := "key:" + hex.EncodeToString(h[:12])
	if e := s.keys.check(r.Context(), h, cred, func() *apiError {
		// A lookup costs a Horde call: charge the address for it, so
		// guessing keys is bounded by the rate limit.
		return s.limit("ip:" + limitAddr(clientIP))
	}); e != nil {
		return nil, e
	}
	return &caller{
		kind:      AuthHordeKey,
		principal: bridge.Principal{Platform: "v1", ClientIP: ip, APIKey: cred},
		limitKey:  limitKey,
	}, nil
}

func (s *Server) noCredentialMessage() string {
	var ways []string
	if s.cfg.AuthTokens {
		ways = append(ways, "a personal hordechat token (hc_...)")
	}
	if s.cfg.AuthHordeKey {
		ways = append(ways, "your AI Horde API key")
	}
	return "This server needs \"Authorization: Bearer <token>\" with " + strings.Join(ways, " or ") + "."
}

func authError(msg string) *apiError {
	return &apiError{Status: 401, Type: "authentication_error", Code: "invalid_api_key", Message: msg}
}

// bearer extracts a bearer credential. bad is set for an Authorization
// header of another scheme.
func bearer(r *http.Request) (cred string, ok, bad bool) {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if h == "" {
		return "", false, false
	}
	scheme, rest, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false, true
	}
	cred = strings.TrimSpace(rest)
	if cred == "" {
		// Tools send "Bearer " when no key was configured: no credential.
		return "", false, false
	}
	return cred, true, false
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// forwardable is the address to send the Horde as Proxied-For, or "" when
// the caller's address means nothing outside this network (loopback,
// private, link-local, CGNAT). Forwarding "127.0.0.1" or "192.168.1.5"
// would lump this server's local callers together with every other
// service's under one Horde identity; without Proxied-For the Horde sees
// this server's own address, which is where such callers really come from.
func forwardable(a netip.Addr) string {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() || cgnat.Contains(a) {
		return ""
	}
	return a.String()
}

// limitAddr groups IPv6 callers by /64, which one subscriber usually holds
// whole, so rotating addresses does not escape the limits.
func limitAddr(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.Unmap().String()
}

// clientAddr is the caller's address: the peer, or when the peer is a
// trusted proxy, the right-most address in X-Forwarded-For (or X-Real-IP)
// that is not itself a trusted proxy.
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if !s.trusted(peer) {
		return peer
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				hops = append(hops, part)
			}
		}
	}
	if len(hops) == 0 {
		if v := strings.TrimSpace(r.Header.Get("X-Real-IP")); v != "" {
			hops = []string{v}
		}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break // garbage from before a trusted hop: stop at the last good one
		}
		client = a
		if !s.trusted(a) {
			break
		}
	}
	return client
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.IPv4Unspecified()
	}
	return a.Unmap().WithZone("")
}

// parseHop parses one forwarded address: "1.2.3.4", "1.2.3.4:567",
// "[::1]:80" or "::1".
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// keyCache remembers which Horde keys find_user accepted or rejected, by
// hash, so a pass-through caller costs one Horde lookup per TTL.
type keyCache struct {
	checker KeyChecker
	clock   clockwork.Clock
	ttl     time.Duration
	negTTL  time.Duration
	max     int
	log     *slog.Logger

	mu       sync.Mutex
	entries  map[[32]byte]keyEntry
	inflight map[[32]byte]*keyLookup
}

type keyEntry struct {
	valid   bool
	expires time.Time
}

type keyLookup struct {
	done chan struct{}
	err  *apiError
}

const (
	keyCacheMax    = 10000
	keyNegativeTTL = time.Minute
)

// check validates a key, from the cache or with one find_user shared by
// concurrent callers. charge is called before a Horde lookup and may refuse it.
func (k *keyCache) check(ctx context.Context, h [32]byte, key string, charge func() *apiError) *apiError {
	for {
		now := k.clock.Now()
		k.mu.Lock()
		if e, ok := k.entries[h]; ok && now.Before(e.expires) {
			k.mu.Unlock()
			if !e.valid {
				return rejectedKey()
			}
			return nil
		}
		if l, ok := k.inflight[h]; ok {
			k.mu.Unlock()
			select {
			case <-l.done:
				if l.err != nil && l.err.Status != 401 {
					return l.err
				}
				continue // read the cached verdict
			case <-ctx.Done():
				return fromBridge(ctx.Err())
			}
		}
		l := &keyLookup{done: make(chan struct{})}
		k.inflight[h] = l
		k.mu.Unlock()

		l.err = k.lookup(ctx, h, key, charge)
		k.mu.Lock()
		delete(k.inflight, h)
		k.mu.Unlock()
		close(l.done)
		return l.err
	}
}

func (k *keyCache) lookup(ctx context.Context, h [32]byte, key string, charge func() *apiError) *apiError {
	if e := charge(); e != nil {
		return e
	}
	// Others may wait for this answer: a caller that leaves must not
	// cancel it for them.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	_, err := k.checker.FindUser(ctx, hordeapi.Caller{APIKey: key})
	switch {
	case err == nil:
		k.store(h, true, k.ttl)
		return nil
	case errors.Is(err, hordeapi.ErrInvalidKey), errors.Is(err, hordeapi.ErrNotFound):
		// find_user answers 404 UserNotFound for a key it does not know.
		k.store(h, false, k.negTTL)
		return rejectedKey()
	default:
		// The Horde is unreachable or failing: say so, remember nothing.
		k.log.Warn("horde key check failed", "key_hash", hex.EncodeToString(h[:4]), "err", err)
		return fromBridge(err)
	}
}

func (k *keyCache) store(h [32]byte, valid bool, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	now := k.clock.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.entries) >= k.max {
		for kh, e := range k.entries {
			if !now.Before(e.expires) {
				delete(k.entries, kh)
			}
		}
		// Still full of live entries: forget half rather than grow; those
		// keys are simply checked again.
		for kh := range k.entries {
			if len(k.entries) < k.max/2 {
				break
			}
			delete(k.entries, kh)
		}
	}
	k.entries[h] = keyEntry{valid: valid, expires: now.Add(ttl)}
}

func rejectedKey() *apiError {
	return authError("The AI Horde does not know this API key. Check it at https://aihorde.net/register, or use a personal hordechat token (hc_...).")
}
