package openai

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	oai "github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
	"github.com/openai/openai-go/packages/param"
)

func TestChatCompletion(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	c := h.sdk(userKey)
	res, err := c.Chat.Completions.New(context.Background(), oai.ChatCompletionNewParams{
		Model: "Fimbulvetr-11B-v2", // a short name
		Messages: []oai.ChatCompletionMessageParamUnion{
			oai.DeveloperMessage("You are terse."),
			oai.UserMessage("Hi there"),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.ID, "chatcmpl-") || len(res.ID) < len("chatcmpl-")+16 {
		t.Errorf("id = %q", res.ID)
	}
	if res.Object != "chat.completion" || res.Created == 0 {
		t.Errorf("object %q created %d", res.Object, res.Created)
	}
	if res.Model != modelFimbul {
		t.Errorf("model = %q, want the model that served, %q", res.Model, modelFimbul)
	}
	if len(res.Choices) != 1 {
		t.Fatalf("choices = %d", len(res.Choices))
	}
	ch := res.Choices[0]
	if ch.Message.Role != "assistant" || ch.Message.Content != defaultAnswer {
		t.Errorf("message = %+v", ch.Message)
	}
	if ch.FinishReason != "stop" {
		t.Errorf("finish_reason = %q", ch.FinishReason)
	}
	if res.Usage.PromptTokens == 0 || res.Usage.CompletionTokens == 0 || res.Usage.TotalTokens != res.Usage.PromptTokens+res.Usage.CompletionTokens {
		t.Errorf("usage = %+v", res.Usage)
	}
	var ext struct {
		Usage struct {
			Kudos *float64 `json:"kudos"`
		} `json:"usage"`
		Horde struct {
			RequestID string   `json:"request_id"`
			Workers   []string `json:"workers"`
		} `json:"horde"`
	}
	if err := json.Unmarshal([]byte(res.RawJSON()), &ext); err != nil {
		t.Fatal(err)
	}
	if ext.Usage.Kudos == nil || *ext.Usage.Kudos <= 0 {
		t.Errorf("usage.kudos missing: %s", res.RawJSON())
	}
	if ext.Horde.RequestID == "" || len(ext.Horde.Workers) != 1 || ext.Horde.Workers[0] != "fast-fimbul" {
		t.Errorf("horde extension = %+v", ext.Horde)
	}
	// The developer message went in as the system prompt.
	sub := submitBody(t, h.lastSubmit())
	prompt, _ := sub["prompt"].(string)
	if !strings.Contains(prompt, "You are terse.") || !strings.Contains(prompt, "Hi there") {
		t.Errorf("prompt = %q", prompt)
	}
	if models, _ := sub["models"].([]any); len(models) != 1 || models[0] != modelFimbul {
		t.Errorf("models = %v", sub["models"])
	}
}

func TestChatParamsReachTheHorde(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.MaxTokens = 200 }})
	c := h.sdk(userKey)
	res, err := c.Chat.Completions.New(context.Background(), oai.ChatCompletionNewParams{
		Model:               modelHermes + "," + modelFimbul,
		Messages:            []oai.ChatCompletionMessageParamUnion{oai.SystemMessage("Be kind."), oai.UserMessage("Hello")},
		MaxTokens:           param.NewOpt[int64](999), // max_completion_tokens wins
		MaxCompletionTokens: param.NewOpt[int64](500), // and is capped to openai.max_tokens
		Temperature:         param.NewOpt(0.5),
		TopP:                param.NewOpt(0.9),
		N:                   param.NewOpt[int64](2),
		Seed:                param.NewOpt[int64](7),
		FrequencyPenalty:    param.NewOpt(1.0),
		Stop:                oai.ChatCompletionNewParamsStopUnion{OfString: param.NewOpt("END")},
	},
		option.WithJSONSet("top_k", 40),
		option.WithJSONSet("min_p", 0.1),
		option.WithJSONSet("top_a", 0.2),
		option.WithJSONSet("typical", 0.95),
		option.WithJSONSet("tfs", 0.9),
		option.WithJSONSet("rep_pen", 1.2),
		option.WithJSONSet("rep_pen_range", 512),
		option.WithJSONSet("rep_pen_slope", 0.7),
		option.WithJSONSet("smoothing_factor", 0.3),
		option.WithJSONSet("dynatemp_range", 0.5),
		option.WithJSONSet("dynatemp_exponent", 1.5),
		option.WithJSONSet("trusted_workers", true),
		option.WithJSONSet("some_future_field", map[string]any{"ignored": true}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 2 || res.Choices[1].Index != 1 {
		t.Fatalf("choices = %+v", res.Choices)
	}
	sub := submitBody(t, h.lastSubmit())
	p, _ := sub["params"].(map[string]any)
	want := map[string]any{
		"n": 2.0, "max_length": 200.0, "temperature": 0.5, "top_p": 0.9, "sampler_seed": 7.0,
		"top_k": 40.0, "min_p": 0.1, "top_a": 0.2, "typical": 0.95, "tfs": 0.9,
		"rep_pen": 1.2, "rep_pen_range": 512.0, "rep_pen_slope": 0.7, "smoothing_factor": 0.3,
		"dynatemp_range": 0.5, "dynatemp_exponent": 1.5,
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("params.%s = %v, want %v", k, p[k], v)
		}
	}
	stops, _ := p["stop_sequence"].([]any)
	found := false
	for _, s := range stops {
		found = found || s == "END"
	}
	if !found {
		t.Errorf("stop_sequence %v lacks the caller's stop", stops)
	}
	if sub["trusted_workers"] != true {
		t.Errorf("trusted_workers = %v", sub["trusted_workers"])
	}
	if models, _ := sub["models"].([]any); len(models) != 2 {
		t.Errorf("models = %v, want both of the comma list", sub["models"])
	}
}

func TestChatContentParts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	body := `{"model":"default","messages":[{"role":"user","content":[{"type":"text","text":"first part"},{"type":"text","text":"second part"}]}]}`
	resp, raw := h.do(http.MethodPost, "/v1/chat/completions", userKey, body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	prompt, _ := submitBody(t, h.lastSubmit())["prompt"].(string)
	if !strings.Contains(prompt, "first part\nsecond part") {
		t.Errorf("text parts not joined: %q", prompt)
	}
}

func TestLegacyCompletion(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	c := h.sdk(userKey)
	const prompt = "Once upon a time, LONG"
	res, err := c.Completions.New(context.Background(), oai.CompletionNewParams{
		Model:     oai.CompletionNewParamsModel(modelNemo),
		Prompt:    oai.CompletionNewParamsPromptUnion{OfString: param.NewOpt(prompt)},
		MaxTokens: param.NewOpt[int64](16),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.ID, "cmpl-") || res.Object != "text_completion" || res.Model != modelNemo {
		t.Errorf("id %q object %q model %q", res.ID, res.Object, res.Model)
	}
	if len(res.Choices) != 1 || res.Choices[0].Text != longAnswer[:16*4] {
		t.Errorf("text = %q", res.Choices[0].Text)
	}
	if res.Choices[0].FinishReason != "length" {
		t.Errorf("finish_reason = %q, want length (cut at max_tokens)", res.Choices[0].FinishReason)
	}
	// The raw prompt went out as is, without a chat template.
	if got := submitBody(t, h.lastSubmit())["prompt"]; got != prompt {
		t.Errorf("prompt sent = %q, want %q", got, prompt)
	}

	// echo puts the prompt before the answer; a one-element list is a prompt.
	resp, raw := h.do(http.MethodPost, "/v1/completions", userKey, `{"model":"`+modelNemo+`","prompt":["Say something"],"echo":true}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	var tc textCompletion
	if err := json.Unmarshal(raw, &tc); err != nil {
		t.Fatal(err)
	}
	if tc.Choices[0].Text != "Say something"+defaultAnswer {
		t.Errorf("echo text = %q", tc.Choices[0].Text)
	}
}

func TestLegacyCompletionStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	c := h.sdk(userKey)
	stream := c.Completions.NewStreaming(context.Background(), oai.CompletionNewParams{
		Model:         oai.CompletionNewParamsModel(modelNemo),
		Prompt:        oai.CompletionNewParamsPromptUnion{OfString: param.NewOpt("Tell me LONG")},
		StreamOptions: oai.ChatCompletionStreamOptionsParam{IncludeUsage: param.NewOpt(true)},
	})
	var text strings.Builder
	chunks, finish, usage := 0, "", int64(0)
	for stream.Next() {
		ch := stream.Current()
		for _, c := range ch.Choices {
			text.WriteString(c.Text)
			if c.FinishReason != "" {
				finish = string(c.FinishReason)
			}
		}
		if ch.Usage.TotalTokens > 0 {
			usage = ch.Usage.TotalTokens
		}
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != longAnswer {
		t.Errorf("streamed text = %q", text.String())
	}
	if chunks < 4 || finish != "stop" || usage == 0 {
		t.Errorf("chunks %d finish %q usage %d", chunks, finish, usage)
	}
}

func TestModelsEndpoints(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	c := h.sdk(userKey)
	page, err := c.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, m := range page.Data {
		ids[m.ID] = true
		if m.Object != "model" || m.OwnedBy == "" {
			t.Errorf("model %+v", m)
		}
	}
	for _, want := range []string{modelFimbul, modelHermes, modelNemo} {
		if !ids[want] {
			t.Errorf("model list lacks %s: %v", want, ids)
		}
	}
	// Extension fields a tool can size requests by.
	var raw struct {
		Data []modelObject `json:"data"`
	}
	if err := json.Unmarshal([]byte(page.RawJSON()), &raw); err != nil {
		t.Fatal(err)
	}
	for _, m := range raw.Data {
		if m.ID == modelHermes && (m.ContextLength != 16384 || m.MaxCompletionTokens != 1024 || m.Workers != 1 || m.Threads == 0) {
			t.Errorf("hermes = %+v", m)
		}
	}

	m, err := c.Models.Get(context.Background(), modelHermes)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != modelHermes {
		t.Errorf("get = %+v", m)
	}
	m, err = c.Models.Get(context.Background(), "hermes-3-llama-3.1-8b") // short, any case
	if err != nil || m.ID != modelHermes {
		t.Errorf("get short = %+v, %v", m, err)
	}
	_, err = c.Models.Get(context.Background(), "Fimbulvetr-11B-v3")
	var ae *oai.Error
	if !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Code != "model_not_found" || ae.Param != "model" || !strings.Contains(ae.Message, "Did you mean") || !strings.Contains(ae.Message, modelFimbul) {
		t.Errorf("unknown model: %v", err)
	}
}
