package openai

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

func TestRateLimitPerCaller(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	h := newHarness(t, harnessOpts{serverClock: clock, cfg: func(c *Config) {
		c.RateLimitPerMinute, c.RateLimitBurst = 6, 2
		c.AuthAnonymous = true
	}})
	post := func(key string) (*http.Response, []byte) {
		return h.do(http.MethodPost, "/v1/chat/completions", key, chatBody("default", "Hi"))
	}
	for i := range 2 {
		if resp, raw := post(userKey); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, raw)
		}
	}
	resp, raw := post(userKey)
	if resp.StatusCode != 429 {
		t.Fatalf("third request: %d %s", resp.StatusCode, raw)
	}
	if e := apiErr(t, raw); e.Type != "rate_limit_error" || e.code() != "rate_limit_exceeded" {
		t.Errorf("error = %+v", e)
	}
	// 6 a minute: one token every 10 s.
	if ra := resp.Header.Get("Retry-After"); ra != "10" {
		t.Errorf("Retry-After = %q, want 10", ra)
	}
	// Other callers have their own buckets.
	if resp, raw := post(validToken); resp.StatusCode != 200 {
		t.Errorf("token caller: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := post(""); resp.StatusCode != 200 {
		t.Errorf("anonymous caller: %d %s", resp.StatusCode, raw)
	}
	clock.Advance(10 * time.Second)
	if resp, raw := post(userKey); resp.StatusCode != 200 {
		t.Errorf("after refill: %d %s", resp.StatusCode, raw)
	}
	if !strings.Contains(h.metricsText(), `hordechat_openai_rejected_total{reason="rate"} 1`) {
		t.Error("rate rejection not counted")
	}
}

func TestRateLimiterBoundedMemory(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	l := newRateLimiter(clock, 60, 5)
	l.max = 1000
	for i := range 10000 {
		l.allow(fmt.Sprintf("ip:%d", i))
	}
	if n := l.size(); n > 1000 {
		t.Errorf("%d buckets kept, bound is 1000", n)
	}
	// A caller at its limit keeps its bucket while the table has room.
	l2 := newRateLimiter(clock, 60, 1)
	if ok, _ := l2.allow("a"); !ok {
		t.Fatal("first request refused")
	}
	if ok, wait := l2.allow("a"); ok || wait != time.Second {
		t.Errorf("second request: ok %v wait %s", ok, wait)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	h, _ := slowHarness(t, func(c *Config) { c.MaxConcurrent = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	submitted := h.side.await(http.MethodGet, "/api/v2/generate/text/status/")
	s := h.openStream(ctx, "/v1/chat/completions", userKey, chatBody(modelFimbul, "Hello", `"stream":true`))
	waitFor(t, submitted, "the first job's status poll")
	resp, raw := h.do(http.MethodPost, "/v1/chat/completions", userKey, chatBody(modelFimbul, "Again"))
	if resp.StatusCode != 429 {
		t.Fatalf("second concurrent job: %d %s", resp.StatusCode, raw)
	}
	if e := apiErr(t, raw); e.code() != "too_many_concurrent_requests" {
		t.Errorf("error = %+v", e)
	}
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
	}
	// Another caller is not affected.
	other := h.side.await(http.MethodPost, "/api/v2/generate/text/async")
	s2 := h.openStream(ctx, "/v1/chat/completions", validToken, chatBody(modelFimbul, "Hello", `"stream":true`))
	waitFor(t, other, "the other caller's submit")
	if s2.resp.StatusCode != 200 {
		t.Errorf("other caller: %d", s2.resp.StatusCode)
	}
	_ = s
}

func TestPromptBlockList(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{cfg: func(c *Config) {
		c.BlockPrompts = []string{`(?i)forbidden\s+topic`, `secret-word-\d+`}
	}})
	for _, tc := range []struct{ path, body string }{
		{"/v1/chat/completions", chatBody("default", "Tell me about the FORBIDDEN   topic please")},
		{"/v1/chat/completions", `{"model":"default","messages":[{"role":"system","content":"secret-word-42"},{"role":"user","content":"hi"}]}`},
		{"/v1/completions", `{"model":"default","prompt":"the forbidden topic is"}`},
	} {
		resp, raw := h.do(http.MethodPost, tc.path, userKey, tc.body)
		if resp.StatusCode != 400 {
			t.Fatalf("%s: %d %s", tc.path, resp.StatusCode, raw)
		}
		e := apiErr(t, raw)
		if e.code() != "content_blocked" || !strings.Contains(e.Message, "blocked by a content rule") {
			t.Errorf("error = %+v", e)
		}
		low := strings.ToLower(string(raw))
		for _, leak := range []string{"forbidden", "topic", "secret-word"} {
			if strings.Contains(low, leak) {
				t.Errorf("the answer reveals the rule (%q): %s", leak, raw)
			}
		}
	}
	if n := len(h.submits()); n != 0 {
		t.Errorf("%d blocked prompts reached the Horde", n)
	}
	if resp, raw := h.do(http.MethodPost, "/v1/chat/completions", userKey, chatBody("default", "an allowed topic")); resp.StatusCode != 200 {
		t.Errorf("allowed prompt: %d %s", resp.StatusCode, raw)
	}
}

func TestModelAllowDenyLists(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{cfg: func(c *Config) {
		c.AllowModels = []string{"koboldcpp/*"}
		c.DenyModels = []string{"*NEMO*"}
	}})
	resp, raw := h.do(http.MethodGet, "/v1/models", "", "")
	var list modelList
	if err := json.Unmarshal(raw, &list); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	if len(list.Data) != 1 || list.Data[0].ID != modelFimbul {
		t.Errorf("models offered = %+v", list.Data)
	}
	for _, denied := range []string{modelNemo, "Hermes-3-Llama-3.1-8B", modelFimbul + "," + modelHermes} {
		resp, raw := h.do(http.MethodPost, "/v1/chat/completions", userKey, chatBody(denied, "Hi"))
		if resp.StatusCode != 404 || apiErr(t, raw).code() != "model_not_found" {
			t.Errorf("%s: %d %s", denied, resp.StatusCode, raw)
		}
		resp, _ = h.do(http.MethodGet, "/v1/models/"+strings.Split(denied, ",")[0], "", "")
		if resp.StatusCode != 404 && !strings.Contains(denied, ",") {
			t.Errorf("GET %s: %d", denied, resp.StatusCode)
		}
	}
	// "default" picks an allowed model.
	resp, raw = h.do(http.MethodPost, "/v1/chat/completions", userKey, chatBody("default", "Hi"))
	if resp.StatusCode != 200 {
		t.Fatalf("default: %d %s", resp.StatusCode, raw)
	}
	if m := submitBody(t, h.lastSubmit())["models"].([]any); len(m) != 1 || m[0] != modelFimbul {
		t.Errorf("default sent models %v", m)
	}
	if n := len(h.submits()); n != 1 {
		t.Errorf("%d submits, want only the allowed one", n)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.CORSOrigins = []string{"https://lite.koboldai.net"} }})
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, h.ts.URL+"/v1/chat/completions", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		resp, err := h.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := preflight("https://lite.koboldai.net")
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://lite.koboldai.net" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") ||
		resp.Header.Get("Access-Control-Allow-Headers") != "authorization, content-type" {
		t.Errorf("allowed preflight: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := preflight("https://evil.example"); resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("disallowed preflight: %d %v", resp.StatusCode, resp.Header)
	}
	// An actual request from the allowed origin is marked; one from
	// another origin is refused before reaching the Horde.
	r, raw := h.do(http.MethodPost, "/v1/chat/completions", userKey, chatBody("default", "Hi"), "Origin", "https://lite.koboldai.net")
	if r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://lite.koboldai.net" || !strings.Contains(r.Header.Get("Vary"), "Origin") {
		t.Errorf("allowed request: %d %v %s", r.StatusCode, r.Header, raw)
	}
	before := len(h.submits())
	r, raw = h.do(http.MethodPost, "/v1/chat/completions", userKey, chatBody("default", "Hi"), "Origin", "https://evil.example")
	if r.StatusCode != 403 || apiErr(t, raw).code() != "origin_not_allowed" || len(h.submits()) != before {
		t.Errorf("cross-origin request: %d %s", r.StatusCode, raw)
	}
	// A browser on the server's own origin (the status page) is fine.
	r, _ = h.do(http.MethodGet, "/v1/models", "", "", "Origin", h.ts.URL)
	if r.StatusCode != 200 {
		t.Errorf("same origin: %d", r.StatusCode)
	}

	star := newHarness(t, harnessOpts{cfg: func(c *Config) { c.CORSOrigins = []string{"*"} }})
	r, _ = star.do(http.MethodGet, "/v1/models", "", "", "Origin", "https://anything.example")
	if r.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("wildcard: %v", r.Header)
	}
}
