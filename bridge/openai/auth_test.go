package openai

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// TestIdentityForwarded checks, for each way of calling, which key and
// which Proxied-For the Horde receives with the submit, and that headers
// a caller adds cannot change them. Callers reach the server directly on
// loopback, or through a trusted reverse proxy on loopback that reports
// their public address.
func TestIdentityForwarded(t *testing.T) {
	t.Parallel()
	direct := newHarness(t, harnessOpts{cfg: func(c *Config) { c.AuthAnonymous = true }})
	proxied := newHarness(t, harnessOpts{cfg: func(c *Config) {
		c.AuthAnonymous = true
		c.TrustedProxies = []string{"127.0.0.1/32"}
	}})
	tokenAddr := direct.ids.PseudoAddress("discord:4242").String()
	spoof := []string{"X-Forwarded-For", "203.0.113.9", "X-Real-IP", "203.0.113.10", "Proxied-For", "198.51.100.7", "Forwarded", "for=198.51.100.8"}
	viaProxy := func(chain string) []string {
		return []string{"X-Forwarded-For", chain, "Proxied-For", "198.51.100.7"}
	}
	tests := []struct {
		name    string
		h       *harness
		key     string
		headers []string
		wantKey string
		// wantProxied is the Proxied-For sent; "" sends none, and the Horde
		// then sees the peer (this server) as the client.
		wantProxied string
	}{
		{name: "personal token uses the linked key and the user's pseudo address", h: direct, key: validToken, wantKey: linkedKey, wantProxied: tokenAddr},
		{name: "personal token ignores spoofed headers", h: direct, key: validToken, headers: spoof, wantKey: linkedKey, wantProxied: tokenAddr},
		{name: "personal token behind a proxy keeps the pseudo address", h: proxied, key: validToken, headers: viaProxy("203.0.113.50"), wantKey: linkedKey, wantProxied: tokenAddr},
		{name: "pass-through from a public address sends the caller's key and address", h: proxied, key: userKey, headers: viaProxy("203.0.113.50"), wantKey: userKey, wantProxied: "203.0.113.50"},
		{name: "pass-through takes the right-most untrusted hop", h: proxied, key: userKey, headers: viaProxy("198.51.100.66, 203.0.113.51"), wantKey: userKey, wantProxied: "203.0.113.51"},
		{name: "pass-through from loopback forwards no address", h: direct, key: userKey, wantKey: userKey},
		{name: "pass-through ignores spoofed headers from an untrusted peer", h: direct, key: userKey, headers: spoof, wantKey: userKey},
		{name: "anonymous from a public address", h: proxied, headers: viaProxy("203.0.113.52"), wantKey: hordeapi.AnonymousKey, wantProxied: "203.0.113.52"},
		{name: "anonymous key as bearer is anonymous", h: proxied, key: hordeapi.AnonymousKey, headers: viaProxy("2001:db8:5::7"), wantKey: hordeapi.AnonymousKey, wantProxied: "2001:db8:5::7"},
		{name: "anonymous from a private address forwards none", h: proxied, headers: viaProxy("192.168.1.20"), wantKey: hordeapi.AnonymousKey},
		{name: "anonymous ignores spoofed headers from an untrusted peer", h: direct, headers: spoof, wantKey: hordeapi.AnonymousKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			resp, raw := h.do(http.MethodPost, "/v1/chat/completions", tt.key, chatBody(modelFimbul, "Hi "+tt.name), tt.headers...)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, raw)
			}
			var sub *hordetest.RecordedRequest
			for _, s := range h.submits() {
				if strings.Contains(string(s.Body), "Hi "+tt.name) {
					sub = &s
				}
			}
			if sub == nil {
				t.Fatal("the submit did not reach the Horde")
			}
			if got := sub.Header.Get("Apikey"); got != tt.wantKey {
				t.Errorf("apikey = %q, want %q", got, tt.wantKey)
			}
			if got := sub.Header.Get("Proxied-For"); got != tt.wantProxied {
				t.Errorf("Proxied-For = %q, want %q", got, tt.wantProxied)
			}
			wantIdentity := tt.wantProxied
			if wantIdentity == "" {
				wantIdentity = "127.0.0.1" // the peer: this server
			}
			if sub.Identity != wantIdentity || sub.Proxied != (tt.wantProxied != "") {
				t.Errorf("the Horde saw identity %q (proxied %v), want %q", sub.Identity, sub.Proxied, wantIdentity)
			}
			if sub.Header.Get("Proxy-Authorization") != testPasskey {
				t.Error("no proxy passkey")
			}
			for _, hdr := range []string{"X-Forwarded-For", "X-Real-Ip", "Forwarded"} {
				if v := sub.Header.Get(hdr); v != "" {
					t.Errorf("%s leaked to the Horde: %q", hdr, v)
				}
			}
		})
	}
}

func TestForwardable(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"203.0.113.7": "203.0.113.7", "2001:db8::1": "2001:db8::1", "::ffff:203.0.113.8": "203.0.113.8",
		"127.0.0.1": "", "::1": "", "10.1.2.3": "", "192.168.0.9": "", "172.20.0.1": "", "fd12::1": "",
		"169.254.1.1": "", "fe80::1": "", "100.64.3.4": "", "0.0.0.0": "",
	} {
		if got := forwardable(netip.MustParseAddr(in)); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	s := &Server{}
	var err error
	s.proxies, err = parsePrefixes([]string{"10.0.0.0/8", "192.0.2.1", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, remote string
		headers      []string
		want         string
	}{
		{"untrusted peer, headers ignored", "198.51.100.1:1234", []string{"X-Forwarded-For", "1.2.3.4", "X-Real-IP", "5.6.7.8"}, "198.51.100.1"},
		{"trusted peer, no header", "10.0.0.1:1", nil, "10.0.0.1"},
		{"trusted peer, one hop", "10.0.0.1:1", []string{"X-Forwarded-For", "203.0.113.7"}, "203.0.113.7"},
		{"skips trusted hops", "192.0.2.1:1", []string{"X-Forwarded-For", "203.0.113.7, 10.2.2.2, 10.3.3.3"}, "203.0.113.7"},
		{"takes right-most untrusted", "10.0.0.1:1", []string{"X-Forwarded-For", "1.1.1.1, 203.0.113.7"}, "203.0.113.7"},
		{"all trusted takes the left-most", "10.0.0.1:1", []string{"X-Forwarded-For", "10.9.9.9, 10.8.8.8"}, "10.9.9.9"},
		{"garbage stops the walk", "10.0.0.1:1", []string{"X-Forwarded-For", "203.0.113.7, bogus, 10.8.8.8"}, "10.8.8.8"},
		{"x-real-ip when no x-forwarded-for", "10.0.0.1:1", []string{"X-Real-IP", "203.0.113.8"}, "203.0.113.8"},
		{"ipv6 with port", "[fd00::1]:443", []string{"X-Forwarded-For", "[2001:db8::5]:5555"}, "2001:db8::5"},
		{"mapped ipv4 peer", "[::ffff:198.51.100.2]:80", nil, "198.51.100.2"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tt.remote
		for i := 0; i+1 < len(tt.headers); i += 2 {
			r.Header.Set(tt.headers[i], tt.headers[i+1])
		}
		if got := s.clientAddr(r).String(); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
	if got := limitAddr(netip.MustParseAddr("2001:db8:1:2:3:4:5:6")); got != "2001:db8:1:2::/64" {
		t.Errorf("limitAddr v6 = %s", got)
	}
}

func TestAuthFailures(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	tests := []struct {
		name, key, header string
		wantMsg           string
	}{
		{name: "no credential", wantMsg: "needs \"Authorization: Bearer <token>\""},
		{name: "unknown personal token", key: "hc_not-a-real-token-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", wantMsg: "not valid"},
		{name: "unknown horde key", key: "definitely-not-a-horde-key", wantMsg: "does not know this API key"},
		{name: "other scheme", header: "Basic dXNlcjpwYXNz", wantMsg: "must be \"Bearer <token>\""},
		{name: "anonymous key while anonymous is off", key: hordeapi.AnonymousKey, wantMsg: "needs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.header != "" {
				hdr = []string{"Authorization", tt.header}
			}
			resp, raw := h.do(http.MethodPost, "/v1/chat/completions", tt.key, chatBody("default", "Hi"), hdr...)
			if resp.StatusCode != 401 {
				t.Fatalf("status %d: %s", resp.StatusCode, raw)
			}
			e := apiErr(t, raw)
			if e.Type != "authentication_error" || e.code() != "invalid_api_key" || !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("error = %+v", e)
			}
			if tt.key != "" && tt.key != hordeapi.AnonymousKey && strings.Contains(string(raw), tt.key) {
				t.Errorf("the answer echoes the credential: %s", raw)
			}
		})
	}
	if n := len(h.submits()); n != 0 {
		t.Errorf("%d submits reached the Horde", n)
	}
}

func TestAuthModesOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.AuthTokens, c.AuthHordeKey, c.AuthAnonymous = false, false, true }})
	for _, key := range []string{validToken, userKey} {
		resp, raw := h.do(http.MethodPost, "/v1/chat/completions", key, chatBody("default", "Hi"))
		if resp.StatusCode != 401 || !strings.Contains(string(raw), "not accepted") {
			t.Errorf("%s…: %d %s", key[:4], resp.StatusCode, raw)
		}
	}
	// Anonymous still works.
	if resp, raw := h.do(http.MethodPost, "/v1/chat/completions", "", chatBody("default", "Hi")); resp.StatusCode != 200 {
		t.Errorf("anonymous: %d %s", resp.StatusCode, raw)
	}
}

// TestHordeKeyCache: one find_user per key, for accepted and rejected keys.
func TestHordeKeyCache(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	findUsers := func() int { return len(h.fake.RequestsTo(http.MethodGet, "/v2/find_user")) }
	base := findUsers()
	for range 3 {
		resp, _ := h.do(http.MethodPost, "/v1/chat/completions", "bad-key-for-cache", chatBody("default", "Hi"))
		if resp.StatusCode != 401 {
			t.Fatalf("bad key: %d", resp.StatusCode)
		}
	}
	if got := findUsers() - base; got != 1 {
		t.Errorf("%d find_user calls for a rejected key used thrice, want 1", got)
	}
	// An accepted key: our check once, plus the bridge's kudos lookup once.
	base = findUsers()
	for range 3 {
		if resp, raw := h.do(http.MethodPost, "/v1/chat/completions", userKey, chatBody("default", "Hi")); resp.StatusCode != 200 {
			t.Fatalf("good key: %d %s", resp.StatusCode, raw)
		}
	}
	if got := findUsers() - base; got > 2 {
		t.Errorf("%d find_user calls for an accepted key used thrice, want at most 2", got)
	}
}

// TestSecretsNeverEchoed: keys and tokens appear in no answer, log line or
// metric.
func TestSecretsNeverEchoed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	const badKey = "secret-bad-horde-key-XYZ123"
	const badToken = "hc_secret-bad-token-XYZ123-qqqqqqqqqqqqqqqqqqqqqqqqqqqqq"
	var bodies []string
	for _, key := range []string{badKey, badToken, userKey, validToken} {
		_, raw := h.do(http.MethodPost, "/v1/chat/completions", key, chatBody("default", "Hi"))
		bodies = append(bodies, string(raw))
		_, raw = h.do(http.MethodPost, "/v1/chat/completions", key, chatBody("no-such-model-anywhere", "Hi"))
		bodies = append(bodies, string(raw))
	}
	// A Horde failure while the caller's own key is in use.
	h.fake.SetMaintenance(true)
	_, raw := h.do(http.MethodPost, "/v1/chat/completions", userKey, chatBody("default", "Hi"))
	bodies = append(bodies, string(raw))
	all := strings.Join(bodies, "\n") + h.logs.String() + h.metricsText()
	for _, secret := range []string{badKey, badToken, userKey, validToken, linkedKey, operatorKey, testPasskey} {
		if strings.Contains(all, secret) {
			t.Errorf("a secret (%s…) appears in answers, logs or metrics", secret[:6])
		}
	}
}

func TestTokenStoreFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.tokens.mu.Lock()
	h.tokens.fail = errors.New("database is locked")
	h.tokens.mu.Unlock()
	resp, raw := h.do(http.MethodPost, "/v1/chat/completions", validToken, chatBody("default", "Hi"))
	if resp.StatusCode != 503 || apiErr(t, raw).Type != "server_error" || strings.Contains(string(raw), "database is locked") {
		t.Errorf("%d %s", resp.StatusCode, raw)
	}
}
