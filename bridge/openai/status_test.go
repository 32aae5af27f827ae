package openai

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hordechat/hordechat/bridge"
)

func TestMetricsExposed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	if resp, raw := h.do(http.MethodPost, "/v1/chat/completions", userKey, chatBody("default", "Hi")); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	h.do(http.MethodPost, "/v1/chat/completions", "", chatBody("default", "Hi")) // 401
	h.do(http.MethodGet, "/nope", "", "")
	m := h.metricsText()
	for _, want := range []string{
		`hordechat_http_requests_total{code="200",route="/v1/chat/completions"} 1`,
		`hordechat_http_requests_total{code="401",route="/v1/chat/completions"} 1`,
		`hordechat_http_requests_total{code="404",route="other"} 1`,
		`hordechat_openai_jobs_total{auth="horde_key",outcome="ok"} 1`,
		`hordechat_openai_rejected_total{reason="auth"} 1`,
		`hordechat_openai_tokens_total{auth="horde_key",kind="completion"}`,
		`hordechat_openai_kudos_total{auth="horde_key"}`,
		`hordechat_openai_job_queue_seconds_count 1`,
		`hordechat_openai_jobs_in_flight 0`,
		`hordechat_jobs_in_flight 0`,
		`hordechat_horde_calls_total{code="202",endpoint="POST /v2/generate/text/async"} 1`,
		`hordechat_horde_calls_total{code="200",endpoint="GET /v2/generate/text/status/{id}"}`,
		`hordechat_horde_call_duration_seconds_bucket`,
		`hordechat_http_request_duration_seconds_bucket{route="/v1/chat/completions"`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Bounded labels: no request id, key or user ends up in a label.
	if regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-`).MatchString(m) {
		t.Error("a Horde request id leaked into a label")
	}
}

func TestMetricsToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.MetricsToken = "scrape-me" }})
	if resp, _ := h.do(http.MethodGet, "/metrics", "", ""); resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	if resp, _ := h.do(http.MethodGet, "/metrics", "wrong", ""); resp.StatusCode != 401 {
		t.Errorf("wrong token: %d", resp.StatusCode)
	}
	if resp, raw := h.do(http.MethodGet, "/metrics", "scrape-me", ""); resp.StatusCode != 200 || !strings.Contains(string(raw), "hordechat_http_requests_total") {
		t.Errorf("right token: %d", resp.StatusCode)
	}
}

func TestEndpointTemplate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/api/v2/generate/text/async":              "/v2/generate/text/async",
		"/api/v2/generate/text/status/abc-123":     "/v2/generate/text/status/{id}",
		"/api/v2/status/models/koboldcpp/Some-7B":  "/v2/status/models/{name}",
		"/api/v2/find_user":                        "/v2/find_user",
		"/api/v2/something/new/with-an-id-0123456": "other",
		"/weird": "other",
	} {
		if got := EndpointTemplate(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

func TestStatusJSON(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.DenyModels = []string{"*nemo*"} }})
	if resp, raw := h.do(http.MethodPost, "/v1/chat/completions", userKey, chatBody("default", "Hi")); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	resp, raw := h.do(http.MethodGet, "/status.json", "", "")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	var st statusJSON
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if st.RequestsServed != 1 || st.JobsInFlight != 0 || !st.Enabled || st.Version != "test" || st.ModelsUpdatedAt == nil {
		t.Errorf("status = %+v", st)
	}
	if st.BaseURL != h.ts.URL+"/v1" {
		t.Errorf("base_url = %q", st.BaseURL)
	}
	if !st.Auth.Tokens || !st.Auth.HordeKey || st.Auth.Anonymous {
		t.Errorf("auth = %+v", st.Auth)
	}
	names := map[string]statusModel{}
	for _, m := range st.Models {
		names[m.Name] = m
	}
	if _, ok := names[modelNemo]; ok || len(names) != 2 {
		t.Errorf("models = %v (nemo is denied)", names)
	}
	if m := names[modelHermes]; m.Workers != 1 || m.ContextLength != 16384 || m.MaxOutputTokens != 1024 {
		t.Errorf("hermes = %+v", m)
	}
}

func TestStatusPage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.PublicBaseURL = "https://horde.example.org/" }})
	resp, raw := h.do(http.MethodGet, "/", "", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	page := string(raw)
	for _, want := range []string{
		"https://horde.example.org/v1", "curl https://horde.example.org/v1/chat/completions",
		"from openai import OpenAI", "@ai-sdk/openai-compatible", "status.json", "<script>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Self-contained: no external script, style sheet, image or font.
	for _, bad := range []string{`<script src`, `rel="stylesheet"`, `<img`, `@import`, `url(http`} {
		if strings.Contains(page, bad) {
			t.Errorf("page loads something external: %q", bad)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	// Only "/" is the page.
	if resp, _ := h.do(http.MethodGet, "/favicon.ico", "", ""); resp.StatusCode != 404 {
		t.Errorf("/favicon.ico: %d", resp.StatusCode)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	var fail atomic.Pointer[error]
	h := newHarness(t, harnessOpts{ready: func(context.Context) error {
		if e := fail.Load(); e != nil {
			return *e
		}
		return nil
	}})
	if resp, raw := h.do(http.MethodGet, "/healthz", "", ""); resp.StatusCode != 200 || !strings.Contains(string(raw), `"ok"`) {
		t.Errorf("healthz: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := h.do(http.MethodGet, "/readyz", "", ""); resp.StatusCode != 200 {
		t.Errorf("readyz: %d %s", resp.StatusCode, raw)
	}
	e := errors.New("database unavailable")
	fail.Store(&e)
	resp, raw := h.do(http.MethodGet, "/readyz", "", "")
	if resp.StatusCode != 503 || !strings.Contains(string(raw), "database unavailable") {
		t.Errorf("readyz failing: %d %s", resp.StatusCode, raw)
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.Enabled = false }})
	for _, path := range []string{"/v1/chat/completions", "/v1/models"} {
		resp, raw := h.do(http.MethodPost, path, userKey, chatBody("default", "Hi"))
		if resp.StatusCode != 404 || apiErr(t, raw).code() != "disabled" {
			t.Errorf("%s: %d %s", path, resp.StatusCode, raw)
		}
	}
	if resp, _ := h.do(http.MethodGet, "/healthz", "", ""); resp.StatusCode != 200 {
		t.Error("healthz must stay up")
	}
	if resp, raw := h.do(http.MethodGet, "/", "", ""); resp.StatusCode != 200 || !strings.Contains(string(raw), "turned off") {
		t.Errorf("status page: %d", resp.StatusCode)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	resp, raw := h.do(http.MethodGet, "/v1/chat/completions", userKey, "")
	if resp.StatusCode != 405 || apiErr(t, raw).code() != "method_not_allowed" || !strings.Contains(resp.Header.Get("Allow"), "POST") {
		t.Errorf("%d %v %s", resp.StatusCode, resp.Header, raw)
	}
}

func TestOpencodeConfig(t *testing.T) {
	t.Parallel()
	raw, err := OpencodeConfig("http://127.0.0.1:8080", []bridge.ModelInfo{
		{Name: modelFimbul, MaxContextLength: 8192, MaxLength: 512},
		{Name: "koboldcpp/No-Capacity-Yet"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Schema   string `json:"$schema"`
		Provider map[string]struct {
			NPM     string `json:"npm"`
			Options struct {
				BaseURL string `json:"baseURL"`
				APIKey  string `json:"apiKey"`
			} `json:"options"`
			Models map[string]struct {
				Name     string `json:"name"`
				ToolCall *bool  `json:"tool_call"`
				Limit    struct {
					Context int `json:"context"`
					Output  int `json:"output"`
				} `json:"limit"`
			} `json:"models"`
		} `json:"provider"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	p, ok := f.Provider["hordechat"]
	if !ok || f.Schema != "https://opencode.ai/config.json" || p.NPM != "@ai-sdk/openai-compatible" {
		t.Fatalf("config = %s", raw)
	}
	if p.Options.BaseURL != "http://127.0.0.1:8080/v1" || p.Options.APIKey != "{env:HORDECHAT_TOKEN}" {
		t.Errorf("options = %+v", p.Options)
	}
	m := p.Models[modelFimbul]
	if m.Limit.Context != 8192 || m.Limit.Output != 512 || m.ToolCall == nil || *m.ToolCall {
		t.Errorf("model = %+v", m)
	}
	if d := p.Models["koboldcpp/No-Capacity-Yet"]; d.Limit.Context == 0 || d.Limit.Output == 0 {
		t.Errorf("fallback limits = %+v", d.Limit)
	}
	if _, err := OpencodeConfig("not a url", nil); err == nil {
		t.Error("a bad base URL was accepted")
	}
}
