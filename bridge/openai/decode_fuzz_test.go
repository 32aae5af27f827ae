package openai

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hordechat/hordechat/bridge"
)

// FuzzDecodeChatRequest runs arbitrary bodies of POST /v1/chat/completions
// (and, for the shared fields, /v1/completions) through the same decoding
// the handlers use: readBody, then chatGen or completionGen. It must never
// panic; it must give either a generation request or an OpenAI-shaped
// error with a message; and no error may repeat a key or secret the
// caller did not send.
func FuzzDecodeChatRequest(f *testing.F) {
	h := newHarness(f, harnessOpts{quiet: true})
	seeds := []string{
		``,
		`null`,
		`{}`,
		`[]`,
		`"hello"`,
		`{"model":"` + modelFimbul + `","messages":[{"role":"user","content":"Hello!"}]}`,
		`{"model":"Fimbulvetr-11B-v2","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":null}],"max_tokens":64,"temperature":0.7,"top_p":0.9,"n":2,"stop":["\n\n","User:"],"seed":42,"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"default","messages":[{"role":"developer","content":[{"type":"text","text":"a"},{"type":"refusal","refusal":"b"}]}],"max_completion_tokens":100000,"stop":"END"}`,
		`{"model":"` + modelHermes + `,` + modelNemo + `, ,","messages":[{"role":"user","content":"x","name":"bob"}],"top_k":40,"min_p":0.05,"rep_pen":1.1,"rep_pen_range":-1,"workers":["w1"],"worker_blacklist":true,"trusted_workers":true}`,
		`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:"}}]}]}`,
		`{"messages":[{"role":"user","content":[{"type":"input_audio"}]}]}`,
		`{"messages":[{"role":"user","content":[{"type":"file"}]}]}`,
		`{"messages":[{"role":"user","content":[{"type":"video"}]}]}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":5}]}]}`,
		`{"messages":[{"role":"user","content":{"type":"text"}}]}`,
		`{"messages":[{"role":"tool","content":"42","tool_call_id":"c1"}]}`,
		`{"messages":[{"role":"assistant","content":"","tool_calls":[{"id":"c1"}]}]}`,
		`{"messages":[{"content":"no role"}]}`,
		`{"messages":[{"role":"wizard","content":"x"}]}`,
		`{"messages":[]}`,
		`{"messages":null}`,
		`{"messages":"hello"}`,
		`{"messages":[null]}`,
		`{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}`,
		`{"messages":[{"role":"user","content":"x"}],"tools":[],"functions":{},"tool_choice":"none","function_call":"auto","response_format":{"type":"text"},"logit_bias":{},"modalities":["text"],"logprobs":false,"top_logprobs":0}`,
		`{"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function"}}`,
		`{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}`,
		`{"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":5}`,
		`{"messages":[{"role":"user","content":"x"}],"audio":{"voice":"alloy"},"modalities":["text","audio"]}`,
		`{"messages":[{"role":"user","content":"x"}],"logit_bias":{"50256":-100}}`,
		`{"messages":[{"role":"user","content":"x"}],"n":0}`,
		`{"messages":[{"role":"user","content":"x"}],"n":99}`,
		`{"messages":[{"role":"user","content":"x"}],"n":1.5}`,
		`{"messages":[{"role":"user","content":"x"}],"n":"2"}`,
		`{"messages":[{"role":"user","content":"x"}],"max_tokens":0}`,
		`{"messages":[{"role":"user","content":"x"}],"max_tokens":-9223372036854775808}`,
		`{"messages":[{"role":"user","content":"x"}],"max_tokens":1e100}`,
		`{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}`,
		`{"messages":[{"role":"user","content":"x"}],"stop":5}`,
		`{"messages":[{"role":"user","content":"x"}],"stop":[1,2]}`,
		`{"messages":[{"role":"user","content":"x"}],"stop":null,"seed":-1}`,
		`{"messages":[{"role":"user","content":"x"}],"stream_options":null,"stream":"yes"}`,
		`{"messages":[{"role":"user","content":"x"}],"model":"no-such-model"}`,
		`{"messages":[{"role":"user","content":"x"}],"model":"` + operatorKey + `"}`,
		`{"messages":[{"role":"user","content":"x"}],"model":"` + strings.Repeat("m", 300) + `"}`,
		`{"messages":[{"role":"user","content":"x"}],"model":["a"]}`,
		`{"messages":[{"role":"user","content":"x"}],"workers":"w1"}`,
		`{"messages":[{"role":"user","content":"x"}],"top_k":"forty"}`,
		`{"messages":[{"role":"user","content":"\ud800"}],"x":{"y":[1,{"z":null}]}}`,
		`{"prompt":"Once upon a time","echo":true,"best_of":1,"suffix":null,"logprobs":null}`,
		`{"prompt":["a"]}`,
		`{"prompt":["a","b"]}`,
		`{"prompt":[1,2,3]}`,
		`{"prompt":"   "}`,
		`{"messages":[{"role":"user","content":"x"}]`,
		`{"messages":[{"role":"user","content":"x"}]} trailing`,
		"\xef\xbb\xbf{}",
		`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	secrets := []string{operatorKey, testPasskey, userKey, linkedKey, validToken, string(testSecret)}
	c := &caller{
		kind:      AuthHordeKey,
		principal: bridge.Principal{Platform: "v1", ClientIP: "192.0.2.7", APIKey: userKey},
		limitKey:  "fuzz",
	}
	check := func(t *testing.T, body []byte, what string, g *gen, e *apiError) {
		t.Helper()
		if (g == nil) == (e == nil) {
			t.Fatalf("%s(%q): want exactly one of a generation and an error, got %v and %v", what, body, g, e)
		}
		if e != nil {
			if e.Status < 400 || e.Status > 599 {
				t.Fatalf("%s(%q): status %d for %q", what, body, e.Status, e.Message)
			}
			if strings.TrimSpace(e.Message) == "" {
				t.Fatalf("%s(%q): error without a message: %+v", what, body, e)
			}
			out, err := json.Marshal(e.body())
			if err != nil {
				t.Fatalf("%s(%q): error body does not encode: %v", what, body, err)
			}
			var back struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(out, &back); err != nil || back.Error.Message == "" || back.Error.Type == "" {
				t.Fatalf("%s(%q): error body %s is not OpenAI-shaped (%v)", what, body, out, err)
			}
			for _, s := range secrets {
				if strings.Contains(string(out), s) && !strings.Contains(string(body), s) {
					t.Fatalf("%s(%q): error body %s repeats a secret", what, body, out)
				}
			}
			return
		}
		if g.n < 1 || g.n > h.srv.cfg.MaxN || g.req.Params.N != g.n {
			t.Fatalf("%s(%q): n = %d (params %d), want 1..%d", what, body, g.n, g.req.Params.N, h.srv.cfg.MaxN)
		}
		if mt := g.req.Params.MaxTokens; mt != nil && (*mt < 1 || h.srv.cfg.MaxTokens > 0 && *mt > h.srv.cfg.MaxTokens) {
			t.Fatalf("%s(%q): max tokens %d", what, body, *mt)
		}
		for _, st := range g.req.Params.Stop {
			if st == "" {
				t.Fatalf("%s(%q): empty stop sequence", what, body)
			}
		}
		if g.req.Principal.APIKey != userKey {
			t.Fatalf("%s(%q): principal changed: %+v", what, body, g.req.Principal)
		}
		if g.chat && len(g.req.Messages) == 0 {
			t.Fatalf("%s(%q): chat generation without messages", what, body)
		}
		if !g.chat && strings.TrimSpace(g.req.Prompt) == "" {
			t.Fatalf("%s(%q): completion without a prompt", what, body)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var chat chatRequest
		g, e := (*gen)(nil), h.srv.readBody(httptest.NewRecorder(), httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(string(body))), &chat)
		if e == nil {
			g, e = h.srv.chatGen(c, &chat)
		}
		check(t, body, "chat", g, e)

		var legacy completionRequest
		g, e = nil, h.srv.readBody(httptest.NewRecorder(), httptest.NewRequest("POST", "/v1/completions", strings.NewReader(string(body))), &legacy)
		if e == nil {
			g, e = h.srv.completionGen(c, &legacy)
		}
		check(t, body, "completion", g, e)
	})
}
