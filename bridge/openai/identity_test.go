package openai

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// Values a hostile caller sends in every identity-looking place. None of
// them may reach the Horde.
const (
	hostileIP      = "192.0.2.66"
	hostileIP2     = "192.0.2.77"
	hostileKey     = "hostile-horde-key-0123456789"
	hostileAccount = "discord:hostile-account-1"
	hostileAgent   = "hostile-agent:6.6.6:evil@example.org"
	hostileHost    = "hostile.example.org"
	hostileHook    = "https://hostile.example.org/hook"
)

// hostileHeaders are every header a proxy, a CDN or the Horde reads as an
// identity or a credential.
func hostileHeaders() []string {
	return []string{
		"Proxied-For", hostileIP,
		"Proxy-Authorization", hostileKey,
		"Apikey", hostileKey,
		"Client-Agent", hostileAgent,
		"Forwarded", "for=" + hostileIP + ";host=" + hostileHost,
		"X-Real-IP", hostileIP,
		"CF-Connecting-IP", hostileIP,
		"True-Client-IP", hostileIP,
		"X-Client-IP", hostileIP,
		"X-Cluster-Client-IP", hostileIP,
		"Fastly-Client-IP", hostileIP,
		"X-Original-Forwarded-For", hostileIP,
		"X-Forwarded-Host", hostileHost,
		"X-Forwarded-Proto", "https",
	}
}

// hostileBody are body fields that look like identity or Horde request
// fields; OpenAI ignores unknown ones, and so must we.
var hostileBody = []string{
	`"user":` + jsonString(hostileAccount),
	`"metadata":{"user_id":` + jsonString(hostileAccount) + `,"apikey":` + jsonString(hostileKey) + `}`,
	`"apikey":` + jsonString(hostileKey),
	`"proxied_for":` + jsonString(hostileIP),
	`"proxied_account":` + jsonString(hostileAccount),
	`"client_agent":` + jsonString(hostileAgent),
	`"webhook":` + jsonString(hostileHook),
	`"params":{"apikey":` + jsonString(hostileKey) + `,"proxied_account":` + jsonString(hostileAccount) + `}`,
	`"extra_body":{"apikey":` + jsonString(hostileKey) + `,"proxied_account":` + jsonString(hostileAccount) + `,"webhook":` + jsonString(hostileHook) + `}`,
	`"trusted_workers":false`,
	// Costs upfront kudos, the operator's when on the operator key.
	`"slow_workers":false`,
	`"shared":true`,
}

// TestIdentityCannotBeChosenByTheCaller sends, for each kind of caller,
// every identity-looking header and body field, directly and through a
// trusted proxy, and checks that the Horde sees exactly the identity the
// caller's credential gives: its key, Proxied-For, proxied_account (the
// operator key is a service account here), the operator's passkey and
// hordechat's Client-Agent. Only a trusted proxy's X-Forwarded-For (or
// X-Real-IP without it) moves an address-based caller.
// TestIdentityForwarded in auth_test.go covers the plain cases.
func TestIdentityCannotBeChosenByTheCaller(t *testing.T) {
	t.Parallel()
	const (
		unlinkedToken   = "hc_token-of-a-user-with-no-linked-key-bbbbbbbbbbbbbbbb"
		unlinkedAccount = "matrix:@bob:example.org"
	)
	opts := func(trusted ...string) harnessOpts {
		return harnessOpts{
			cfg: func(c *Config) {
				c.AuthAnonymous = true
				c.TrustedProxies = trusted
			},
			bridgeCfg: func(c *bridge.Config) { c.ServiceAccount = true },
			horde: []hordetest.Option{func(o *hordetest.Options) {
				for i := range o.Users {
					o.Users[i].Service = o.Users[i].APIKey == operatorKey
				}
			}},
		}
	}
	direct := newHarness(t, opts())
	proxied := newHarness(t, opts("127.0.0.1/32"))
	for _, h := range []*harness{direct, proxied} {
		h.tokens.mu.Lock()
		h.tokens.users[unlinkedToken] = TokenUser{Platform: "matrix", PlatformUserID: "@bob:example.org", StoreUserID: 8}
		h.tokens.mu.Unlock()
	}
	linkedAddr := direct.ids.PseudoAddress("discord:4242").String()
	unlinkedAddr := direct.ids.PseudoAddress(unlinkedAccount).String()
	withXFF := func(chain string) []string {
		return append(hostileHeaders(), "X-Forwarded-For", chain)
	}
	const client = "203.0.113.51"
	chain := hostileIP2 + ", " + client // the left part is the caller's own claim

	tests := []struct {
		name    string
		h       *harness
		key     string
		headers []string
		wantKey string
		// wantProxied is the Proxied-For; "" sends none (the Horde then
		// sees this server).
		wantProxied string
		// wantAccount is proxied_account; "" sends none.
		wantAccount string
	}{
		{name: "token with a linked key", h: direct, key: validToken, headers: withXFF(hostileIP2), wantKey: linkedKey, wantProxied: linkedAddr},
		{name: "token with a linked key behind the proxy", h: proxied, key: validToken, headers: withXFF(chain), wantKey: linkedKey, wantProxied: linkedAddr},
		{name: "token without a linked key", h: direct, key: unlinkedToken, headers: withXFF(hostileIP2), wantKey: operatorKey, wantProxied: unlinkedAddr, wantAccount: unlinkedAccount},
		{name: "token without a linked key behind the proxy", h: proxied, key: unlinkedToken, headers: withXFF(chain), wantKey: operatorKey, wantProxied: unlinkedAddr, wantAccount: unlinkedAccount},
		{name: "horde key from an untrusted peer", h: direct, key: userKey, headers: withXFF(hostileIP2), wantKey: userKey},
		{name: "horde key behind the proxy", h: proxied, key: userKey, headers: withXFF(chain), wantKey: userKey, wantProxied: client},
		{name: "anonymous from an untrusted peer", h: direct, headers: withXFF(hostileIP2), wantKey: hordeapi.AnonymousKey},
		{name: "anonymous behind the proxy", h: proxied, headers: withXFF(chain), wantKey: hordeapi.AnonymousKey, wantProxied: client},
		{name: "anonymous key as bearer behind the proxy", h: proxied, key: hordeapi.AnonymousKey, headers: withXFF(chain), wantKey: hordeapi.AnonymousKey, wantProxied: client},
		// Without X-Forwarded-For the trusted proxy's X-Real-IP counts, and
		// nothing else does: hostileHeaders sets it, so the proxy must have.
		{name: "anonymous behind the proxy with only X-Real-IP", h: proxied, headers: append(hostileHeaders(), "X-Real-IP", client), wantKey: hordeapi.AnonymousKey, wantProxied: client},
		// CDN headers alone move nothing: the peer (loopback) is the caller.
		{name: "anonymous behind the proxy with CDN headers only", h: proxied, headers: []string{"CF-Connecting-IP", hostileIP, "True-Client-IP", hostileIP, "Forwarded", "for=" + hostileIP, "Proxied-For", hostileIP}, wantKey: hordeapi.AnonymousKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			marker := "identity case " + tt.name
			before := len(h.fake.Requests())
			resp, raw := h.do(http.MethodPost, "/v1/chat/completions", tt.key, chatBody(modelFimbul, marker, hostileBody...), tt.headers...)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, raw)
			}
			var sub *hordetest.RecordedRequest
			for _, s := range h.submits() {
				if strings.Contains(string(s.Body), marker) {
					sub = &s
				}
			}
			if sub == nil {
				t.Fatal("the submit did not reach the Horde")
			}
			if got := sub.Header.Get("Apikey"); got != tt.wantKey {
				t.Errorf("apikey = %q, want %q", got, tt.wantKey)
			}
			if got := sub.Header.Values("Proxied-For"); strings.Join(got, ",") != tt.wantProxied {
				t.Errorf("Proxied-For = %q, want %q", got, tt.wantProxied)
			}
			wantIdentity := tt.wantProxied
			if wantIdentity == "" {
				wantIdentity = "127.0.0.1"
			}
			if sub.Identity != wantIdentity {
				t.Errorf("the Horde counted the request for %q, want %q", sub.Identity, wantIdentity)
			}
			if got := sub.Header.Values("Proxy-Authorization"); len(got) != 1 || got[0] != testPasskey {
				t.Errorf("Proxy-Authorization = %q, want the operator's passkey only", got)
			}
			if got := sub.Header.Get("Client-Agent"); !strings.HasPrefix(got, "hordechat:") {
				t.Errorf("Client-Agent = %q, want hordechat's", got)
			}
			body := submitBody(t, *sub)
			if got, _ := body["proxied_account"].(string); got != tt.wantAccount {
				t.Errorf("proxied_account = %q, want %q", got, tt.wantAccount)
			}
			for _, field := range []string{"apikey", "proxied_for", "user", "metadata", "extra_body", "webhook", "client_agent", "shared"} {
				if v, ok := body[field]; ok {
					t.Errorf("the caller's %s reached the Horde: %v", field, v)
				}
			}
			if body["slow_workers"] != true {
				t.Errorf("slow_workers = %v: the caller chose it, want the bridge's true", body["slow_workers"])
			}
			if params, _ := body["params"].(map[string]any); params["apikey"] != nil || params["proxied_account"] != nil {
				t.Errorf("the caller's params reached the Horde: %v", params)
			}
			// Every call made for this request (key check, submit, polls):
			// nothing hostile, never the personal token.
			for _, rr := range h.fake.Requests()[before:] {
				all := bytes.NewBuffer(rr.Body)
				for name, vs := range rr.Header {
					all.WriteString("\n" + name + ": " + strings.Join(vs, ","))
				}
				for _, bad := range []string{hostileIP, hostileIP2, hostileKey, hostileAccount, hostileAgent, hostileHost, hostileHook, TokenPrefix} {
					if strings.Contains(all.String(), bad) {
						t.Errorf("%s %s carried %q to the Horde", rr.Method, rr.Path, bad)
					}
				}
				if strings.Contains(rr.Path, "/generate/text/") && rr.Header.Get("Apikey") != tt.wantKey {
					t.Errorf("%s %s used key %q, want %q", rr.Method, rr.Path, rr.Header.Get("Apikey"), tt.wantKey)
				}
			}
		})
	}
}
