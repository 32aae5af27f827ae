package openai

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	oai "github.com/openai/openai-go"
	"github.com/openai/openai-go/packages/param"

	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// TestErrorClasses checks each class of error: status, OpenAI type, code,
// param, and that nothing reached the Horde when it should not have.
func TestErrorClasses(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.MaxBodyBytes = 4096; c.MaxN = 2 }})
	msg := func(content string) string { return `"messages":[{"role":"user","content":` + content + `}]` }
	tests := []struct {
		name      string
		path      string
		body      string
		status    int
		typ       string
		code      string
		param     string
		msgPart   string
		reachesHD bool
	}{
		{name: "invalid json", body: `{"model": "default", "messages": [`, status: 400, typ: "invalid_request_error", code: "invalid_json"},
		{name: "empty body", body: ``, status: 400, code: "invalid_json"},
		{name: "wrong type", body: `{"model":"default",` + msg(`"hi"`) + `,"temperature":"hot"}`, status: 400, code: "invalid_type", param: "temperature"},
		{name: "bad stop type", body: `{"model":"default",` + msg(`"hi"`) + `,"stop":42}`, status: 400, code: "invalid_json", msgPart: "stop must be"},
		{name: "no messages", body: `{"model":"default","messages":[]}`, status: 400, param: "messages"},
		{name: "unknown role", body: `{"model":"default","messages":[{"role":"wizard","content":"hi"}]}`, status: 400, param: "messages[0].role"},
		{name: "unknown model suggests", body: `{"model":"Fimbulvetr-11B",` + msg(`"hi"`) + `}`, status: 404, code: "model_not_found", param: "model", msgPart: "Did you mean"},
		{name: "backend name alone", body: `{"model":"koboldcpp",` + msg(`"hi"`) + `}`, status: 404, code: "model_not_found", param: "model"},
		{name: "temperature out of range", body: `{"model":"default",` + msg(`"hi"`) + `,"temperature":9}`, status: 400, code: "invalid_request", param: "temperature", msgPart: "between 0 and 5"},
		{name: "top_k out of range", body: `{"model":"default",` + msg(`"hi"`) + `,"top_k":1000}`, status: 400, param: "top_k"},
		{name: "n above max_n", body: `{"model":"default",` + msg(`"hi"`) + `,"n":3}`, status: 400, param: "n", msgPart: "between 1 and 2"},
		{name: "max_tokens zero", body: `{"model":"default",` + msg(`"hi"`) + `,"max_tokens":0}`, status: 400, param: "max_tokens"},
		{name: "tools", body: `{"model":"default",` + msg(`"hi"`) + `,"tools":[{"type":"function","function":{"name":"f"}}]}`, status: 400, code: "unsupported_parameter", param: "tools", msgPart: "tool"},
		{name: "functions", body: `{"model":"default",` + msg(`"hi"`) + `,"functions":[{"name":"f"}]}`, status: 400, param: "functions"},
		{name: "tool_choice required", body: `{"model":"default",` + msg(`"hi"`) + `,"tool_choice":"required"}`, status: 400, param: "tool_choice"},
		{name: "logprobs", body: `{"model":"default",` + msg(`"hi"`) + `,"logprobs":true}`, status: 400, param: "logprobs"},
		{name: "top_logprobs", body: `{"model":"default",` + msg(`"hi"`) + `,"top_logprobs":3}`, status: 400, param: "top_logprobs"},
		{name: "json mode", body: `{"model":"default",` + msg(`"hi"`) + `,"response_format":{"type":"json_object"}}`, status: 400, param: "response_format"},
		{name: "audio", body: `{"model":"default",` + msg(`"hi"`) + `,"audio":{"voice":"alloy","format":"mp3"}}`, status: 400, param: "audio"},
		{name: "image part", body: `{"model":"default",` + msg(`[{"type":"text","text":"see"},{"type":"image_url","image_url":{"url":"data:,"}}]`) + `}`, status: 400, code: "unsupported_parameter", param: "messages[0].content[1]", msgPart: "images"},
		{name: "tool message", body: `{"model":"default","messages":[{"role":"tool","content":"42","tool_call_id":"x"}]}`, status: 400, param: "messages[0].role"},
		{name: "assistant tool calls", body: `{"model":"default","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}"}}]}]}`, status: 400, param: "messages[0].tool_calls"},
		{name: "body too large", body: `{"model":"default",` + msg(`"`+strings.Repeat("a", 5000)+`"`) + `}`, status: 413, code: "request_too_large"},
		{name: "legacy batch", path: "/v1/completions", body: `{"model":"default","prompt":["a","b"]}`, status: 400, param: "prompt"},
		{name: "legacy token ids", path: "/v1/completions", body: `{"model":"default","prompt":[1,2,3]}`, status: 400, param: "prompt"},
		{name: "legacy suffix", path: "/v1/completions", body: `{"model":"default","prompt":"a","suffix":"b"}`, status: 400, param: "suffix"},
		{name: "unknown route", path: "/v1/embeddings", body: `{}`, status: 404, code: "unknown_url"},
		// Accepted: harmless values of fields we cannot honour.
		{name: "text response format is fine", body: `{"model":"default",` + msg(`"hi"`) + `,"response_format":{"type":"text"},"tool_choice":"none","tools":[],"logprobs":false,"parallel_tool_calls":true,"user":"u1"}`, status: 200, reachesHD: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/v1/chat/completions"
			}
			before := len(h.submits())
			resp, raw := h.do(http.MethodPost, path, userKey, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, raw)
			}
			if got := len(h.submits()) - before; (got > 0) != tt.reachesHD {
				t.Errorf("%d submits reached the Horde", got)
			}
			if tt.status == 200 {
				return
			}
			e := apiErr(t, raw)
			if e.Message == "" || (tt.typ != "" && e.Type != tt.typ) || (tt.code != "" && e.code() != tt.code) ||
				(tt.param != "" && e.param() != tt.param) || (tt.msgPart != "" && !strings.Contains(e.Message, tt.msgPart)) {
				t.Errorf("error = %+v (param %q code %q)", e, e.param(), e.code())
			}
			if tt.status < 500 && e.Type != "invalid_request_error" && tt.status != 401 {
				t.Errorf("type %q for status %d", e.Type, tt.status)
			}
		})
	}
}

// TestHordeErrorsMapped drives Horde-side failures through bridge.Classify
// and checks the OpenAI answers, through the official SDK.
func TestHordeErrorsMapped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		setup      func(*harness)
		status     int
		code       string
		retryAfter bool
		alt        string // another acceptable code (status from its class)
	}{
		{name: "maintenance", setup: func(h *harness) { h.fake.SetMaintenance(true) }, status: 503, code: "horde_maintenance"},
		{name: "ip timeout", setup: func(h *harness) { h.fake.TimeoutIP("127.0.0.1", 90*time.Second) }, status: 403, code: "horde_timeout", retryAfter: true},
		{name: "horde rate limit", setup: func(h *harness) {
			h.fake.Inject(hordetest.Fault{Kind: hordetest.FaultRateLimit, Method: http.MethodPost, Path: "/v2/generate/text/async", RetryAfter: 7 * time.Second})
		}, status: 429, code: "rate_limited", retryAfter: true},
		{name: "horde down", setup: func(h *harness) {
			h.fake.Inject(hordetest.Fault{Kind: hordetest.FaultStatus, Status: 502, Method: http.MethodPost, Path: "/v2/generate/text/async"})
		}, status: 502, code: "horde_unavailable"},
		{name: "no workers for model", setup: func(h *harness) {
			h.fake.RemoveWorker("fast-fimbul")
			if err := h.svc.RefreshModels(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, status: 404, code: "model_not_found", alt: "no_workers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			tt.setup(h)
			c := h.sdk(userKey)
			_, err := c.Chat.Completions.New(context.Background(), oai.ChatCompletionNewParams{
				Model: modelFimbul, Messages: []oai.ChatCompletionMessageParamUnion{oai.UserMessage("Hi")},
				MaxTokens: param.NewOpt[int64](20),
			})
			var ae *oai.Error
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v", err)
			}
			if tt.alt != "" && ae.Code == tt.alt && ae.StatusCode == 503 {
				return // the model list may still name the model, without workers
			}
			if ae.StatusCode != tt.status || ae.Code != tt.code || ae.Message == "" {
				t.Errorf("status %d code %q message %q", ae.StatusCode, ae.Code, ae.Message)
			}
			ra := ae.Response.Header.Get("Retry-After")
			if tt.retryAfter {
				if n, err := strconv.Atoi(ra); err != nil || n < 1 {
					t.Errorf("Retry-After = %q", ra)
				}
			}
		})
	}
}
