package openai

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	oai "github.com/openai/openai-go"
	"github.com/openai/openai-go/packages/param"

	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

func TestStreamWithSDK(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	c := h.sdk(userKey)
	stream := c.Chat.Completions.NewStreaming(context.Background(), oai.ChatCompletionNewParams{
		Model:         modelHermes,
		Messages:      []oai.ChatCompletionMessageParamUnion{oai.UserMessage("Tell me something LONG")},
		N:             param.NewOpt[int64](2),
		StreamOptions: oai.ChatCompletionStreamOptionsParam{IncludeUsage: param.NewOpt(true)},
	})
	var acc oai.ChatCompletionAccumulator
	ids := map[string]bool{}
	contentChunks := 0
	for stream.Next() {
		ch := stream.Current()
		acc.AddChunk(ch)
		ids[ch.ID] = true
		for _, c := range ch.Choices {
			if c.Delta.Content != "" {
				contentChunks++
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 {
		t.Errorf("chunks carry %d ids, want one: %v", len(ids), ids)
	}
	for id := range ids {
		if !strings.HasPrefix(id, "chatcmpl-") {
			t.Errorf("id %q", id)
		}
	}
	if len(acc.Choices) != 2 {
		t.Fatalf("choices = %d", len(acc.Choices))
	}
	for i, ch := range acc.Choices {
		if ch.Message.Content != longAnswer || ch.FinishReason != "stop" || ch.Message.Role != "assistant" {
			t.Errorf("choice %d = %q / %q / %q", i, ch.Message.Content, ch.FinishReason, ch.Message.Role)
		}
	}
	if contentChunks < 2*3 {
		t.Errorf("the answer came in %d content chunks, want a few per choice", contentChunks)
	}
	if acc.Usage.CompletionTokens == 0 || acc.Usage.TotalTokens != acc.Usage.PromptTokens+acc.Usage.CompletionTokens {
		t.Errorf("usage = %+v", acc.Usage)
	}
	if acc.Model != modelHermes {
		t.Errorf("model = %q", acc.Model)
	}
}

// slowHarness runs the Horde and the bridge on a fake clock with one slow
// worker that a first request keeps busy, so the next one queues; the
// server's heartbeats run on the real clock every 20 ms.
func slowHarness(t *testing.T, cfg func(*Config)) (*harness, *clockwork.FakeClock) {
	t.Helper()
	clock := clockwork.NewFakeClockAt(hordetest.DefaultStart)
	h := newHarness(t, harnessOpts{
		hordeClock: clock,
		cfg: func(c *Config) {
			c.Heartbeat = 20 * time.Millisecond
			if cfg != nil {
				cfg(c)
			}
		},
		horde: []hordetest.Option{hordetest.WithWorkers(hordetest.Worker{
			Name: "slow", Models: []string{modelFimbul}, MaxLength: 512, MaxContextLength: 4096, TokensPerSecond: 0.5, Threads: 1,
		})},
	})
	// Keep the only worker busy for 75 simulated seconds.
	_, err := h.client.SubmitText(context.Background(), hordeapi.Caller{APIKey: operatorKey}, &hordeapi.TextRequest{
		Prompt: "occupy the worker, LONG", Models: []string{modelFimbul},
		Params: &hordeapi.TextParams{MaxLength: hordeapi.Ptr(100), MaxContextLength: hordeapi.Ptr(1024)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, clock
}

func TestStreamHeartbeatsWhileQueued(t *testing.T) {
	t.Parallel()
	h, _ := slowHarness(t, nil)
	s := h.openStream(context.Background(), "/v1/chat/completions", userKey,
		chatBody(modelFimbul, "Hello, LONG please", `"stream":true`, `"max_tokens":64`, `"stream_options":{"include_usage":true}`))
	if s.resp.StatusCode != 200 || !strings.HasPrefix(s.resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", s.resp.StatusCode, s.resp.Header.Get("Content-Type"))
	}
	// The role chunk comes at once, before the job has moved at all.
	first, _ := s.next(t)
	var role chatChunk
	if !strings.HasPrefix(first, "data: ") || json.Unmarshal([]byte(strings.TrimPrefix(first, "data: ")), &role) != nil ||
		role.Choices[0].Delta.Role != "assistant" || role.Model != modelFimbul {
		t.Fatalf("first line = %q", first)
	}
	var comments, data []string
	for {
		l, ok := s.next(t)
		if !ok {
			break
		}
		switch {
		case strings.HasPrefix(l, ": "):
			comments = append(comments, l)
			h.fake.Advance(time.Second) // the queue moves one simulated second per heartbeat
		case strings.HasPrefix(l, "data: "):
			data = append(data, strings.TrimPrefix(l, "data: "))
		}
	}
	joined := strings.Join(comments, "\n")
	for _, want := range []string{": queued, position 1, eta ", ": processing"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no heartbeat %q in:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "processing") && strings.Contains(joined[strings.Index(joined, "processing"):], ": queued") {
		t.Errorf("the job went back to queued after processing:\n%s", joined)
	}
	if len(comments) < 100 {
		t.Errorf("only %d heartbeats over 150 simulated seconds of queue and work", len(comments))
	}
	if len(data) < 4 || data[len(data)-1] != "[DONE]" {
		t.Fatalf("data events = %q", data)
	}
	var text strings.Builder
	var sawUsage, sawFinish bool
	for _, d := range data[:len(data)-1] {
		var ch chatChunk
		if err := json.Unmarshal([]byte(d), &ch); err != nil {
			t.Fatalf("bad chunk %q: %v", d, err)
		}
		if "chatcmpl-"+strings.TrimPrefix(role.ID, "chatcmpl-") != ch.ID {
			t.Errorf("chunk id %q differs from the role chunk's %q", ch.ID, role.ID)
		}
		for _, c := range ch.Choices {
			if c.Delta.Content != nil {
				text.WriteString(*c.Delta.Content)
			}
			sawFinish = sawFinish || (c.FinishReason != nil && *c.FinishReason == "stop")
		}
		sawUsage = sawUsage || (ch.Usage != nil && len(ch.Choices) == 0)
	}
	if text.String() != longAnswer || !sawFinish || !sawUsage {
		t.Errorf("text %q finish %v usage %v", text.String(), sawFinish, sawUsage)
	}
}

func TestStreamDisconnectCancelsHordeJob(t *testing.T) {
	t.Parallel()
	h, _ := slowHarness(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	submitted := h.side.await(http.MethodPost, "/api/v2/generate/text/async")
	s := h.openStream(ctx, "/v1/chat/completions", userKey, chatBody(modelFimbul, "Hello", `"stream":true`))
	waitFor(t, submitted, "the submit")
	s.until(t, func(l string) bool { return strings.HasPrefix(l, ": ") }) // a heartbeat: the stream is live
	ids := h.fake.RequestIDs()
	ours := ids[len(ids)-1]
	deleted := h.side.await(http.MethodDelete, "/api/v2/generate/text/status/"+ours)
	cancel()
	waitFor(t, deleted, "the DELETE of the abandoned request")
	if info, ok := h.fake.Request(ours); !ok || !info.Cancelled {
		t.Errorf("request %s not cancelled at the Horde: %+v", ours, info)
	}
	if got := len(h.fake.RequestsTo(http.MethodDelete, "/v2/generate/text/status/"+ours)); got != 1 {
		t.Errorf("%d DELETEs", got)
	}
}

func TestNonStreamDisconnectCancelsHordeJob(t *testing.T) {
	t.Parallel()
	h, _ := slowHarness(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	submitted := h.side.await(http.MethodPost, "/api/v2/generate/text/async")
	errc := make(chan error, 1)
	c := h.sdk(userKey)
	go func() {
		_, err := c.Chat.Completions.New(ctx, oai.ChatCompletionNewParams{
			Model: modelFimbul, Messages: []oai.ChatCompletionMessageParamUnion{oai.UserMessage("Hello")},
		})
		errc <- err
	}()
	waitFor(t, submitted, "the submit")
	ids := h.fake.RequestIDs()
	ours := ids[len(ids)-1]
	deleted := h.side.await(http.MethodDelete, "/api/v2/generate/text/status/"+ours)
	cancel()
	waitFor(t, deleted, "the DELETE of the abandoned request")
	if err := <-errc; err == nil {
		t.Error("the cancelled call succeeded")
	}
	if info, _ := h.fake.Request(ours); !info.Cancelled {
		t.Error("not cancelled at the Horde")
	}
}

func TestStreamSubmitErrorKeepsHTTPStatus(t *testing.T) {
	t.Parallel()
	// A server clock that never moves: the stream may start only when the
	// Horde has the job, so the refused submit must come back as a status.
	h := newHarness(t, harnessOpts{serverClock: clockwork.NewFakeClock()})
	h.fake.SetMaintenance(true)
	resp, raw := h.do(http.MethodPost, "/v1/chat/completions", userKey, chatBody(modelFimbul, "Hi", `"stream":true`))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	if e := apiErr(t, raw); e.code() != string(bridge.CodeMaintenance) || e.Type != "server_error" {
		t.Errorf("error = %+v", e)
	}
}

func TestStreamErrorAfterStartIsAnEvent(t *testing.T) {
	t.Parallel()
	h, _ := slowHarness(t, nil)
	s := h.openStream(context.Background(), "/v1/chat/completions", userKey, chatBody(modelFimbul, "Hello", `"stream":true`))
	s.until(t, func(l string) bool { return strings.HasPrefix(l, ": ") })
	h.fake.FaultJobs(3) // three failed jobs fault the whole request
	var last string
	for {
		l, ok := s.next(t)
		if !ok {
			break
		}
		if strings.HasPrefix(l, ": ") {
			h.fake.Advance(time.Second)
			continue
		}
		if l != "" {
			last = l
		}
	}
	if !strings.HasPrefix(last, "data: {\"error\"") {
		t.Fatalf("last event = %q, want an error event", last)
	}
	e := apiErr(t, []byte(strings.TrimPrefix(last, "data: ")))
	if e.code() != string(bridge.CodeFaulted) || e.Type != "server_error" {
		t.Errorf("error = %+v", e)
	}
}

func TestSplitText(t *testing.T) {
	t.Parallel()
	for _, text := range []string{"", "short", longAnswer, strings.Repeat("héllo wörld ", 40), strings.Repeat("x", 500), "日本語のテキスト" + strings.Repeat("です", 60)} {
		parts := splitText(text, contentChunks)
		if strings.Join(parts, "") != text {
			t.Errorf("pieces of %q do not join back", text)
		}
		if len(text) > 200 && len(parts) < 3 {
			t.Errorf("%d pieces for %d bytes", len(parts), len(text))
		}
		for _, p := range parts {
			if !json.Valid([]byte(jsonString(p))) || strings.ContainsRune(p, '\uFFFD') {
				t.Errorf("piece %q cuts a character", p)
			}
		}
	}
}

func TestDescribeProgress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    bridge.Progress
		seen bool
		want string
	}{
		{"nothing yet", bridge.Progress{}, false, "submitted, waiting for the first status"},
		{"queued", bridge.Progress{Stage: bridge.StageQueued, QueuePosition: 3, ETA: 20 * time.Second}, true, "queued, position 3, eta 20s"},
		{"processing", bridge.Progress{Stage: bridge.StageProcessing, ETA: 5 * time.Second}, true, "processing, eta 5s"},
		{"restarted", bridge.Progress{Stage: bridge.StageQueued, QueuePosition: 1, Restarted: 1}, true, "queued, position 1, restarted 1"},
		{"retrying", bridge.Progress{Stage: bridge.StageRetrying, Err: &bridge.Error{Message: "The Horde asks\nto slow down."}}, true, "retrying: The Horde asks to slow down."},
	}
	for _, tt := range tests {
		if got := describe(tt.p, tt.seen); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
