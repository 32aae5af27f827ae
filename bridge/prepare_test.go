package bridge

import (
	"context"
	"strings"
	"testing"

	"github.com/hordechat/hordechat/bridge/prompt"
	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// preparedService is a Service with models loaded and not started: enough
// for prepare.
func preparedService(t *testing.T, cfg Config, opts ...hordetest.Option) (*Service, *hordetest.Server) {
	t.Helper()
	fake := hordetest.New(t, opts...)
	svc, err := New(cfg, Deps{Client: newTestClient(t, fake, "", 0), Store: newMemStore(), IdentitySecret: testSecret, Clock: fake.Clock()})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.RefreshModels(context.Background()); err != nil {
		t.Fatal(err)
	}
	return svc, fake
}

func userMsg(s string) []prompt.Message { return []prompt.Message{{Role: "user", Content: s}} }

func TestPrepareFitsToWorkers(t *testing.T) {
	svc, _ := preparedService(t, DefaultConfig(), hordetest.WithWorkers(
		hordetest.Worker{Name: "a", Models: []string{"koboldcpp/Fimbulvetr-11B-v2"}, MaxLength: 1024, MaxContextLength: 4096},
		hordetest.Worker{Name: "b", Models: []string{"koboldcpp/Small-7B"}, MaxLength: 128, MaxContextLength: 1024},
	))
	tests := []struct {
		name       string
		req        Request
		kudos      float64
		wantLen    int
		wantCtx    int
		wantLimit  bool
		wantKudos  bool
		wantDown   bool
		wantModels []string
	}{
		{name: "default tokens within worker", req: Request{Models: []string{"Fimbulvetr-11B-v2"}, Messages: userMsg("hi")}, kudos: 1e6, wantLen: 300, wantCtx: 4096, wantModels: []string{"koboldcpp/Fimbulvetr-11B-v2"}},
		{name: "capped by worker max_length", req: Request{Models: []string{"Small-7B"}, Messages: userMsg("hi"), Params: Params{MaxTokens: hordeapi.Ptr(400)}}, kudos: 1e6, wantLen: 128, wantCtx: 1024, wantLimit: true},
		{name: "raised to horde minimum", req: Request{Models: []string{"Small-7B"}, Messages: userMsg("hi"), Params: Params{MaxTokens: hordeapi.Ptr(3)}}, kudos: 1e6, wantLen: 16, wantCtx: 1024},
		{name: "upfront kudos lowers for anonymous", req: Request{Models: []string{"Fimbulvetr-11B-v2"}, Messages: userMsg("hi"), Params: Params{MaxTokens: hordeapi.Ptr(1024)}}, kudos: 0, wantCtx: 4096, wantLimit: true, wantKudos: true},
		{name: "rich user keeps length", req: Request{Models: []string{"Fimbulvetr-11B-v2"}, Messages: userMsg("hi"), Params: Params{MaxTokens: hordeapi.Ptr(512)}}, kudos: 1e6, wantLen: 512, wantCtx: 4096},
		{name: "unknown balance asks the horde to downgrade", req: Request{Models: []string{"Fimbulvetr-11B-v2"}, Messages: userMsg("hi"), Params: Params{MaxTokens: hordeapi.Ptr(1024)}}, kudos: -1, wantLen: 1024, wantCtx: 4096, wantDown: true},
		{name: "several models use the best worker", req: Request{Models: []string{"Small-7B", "koboldcpp/Fimbulvetr-11B-v2"}, Messages: userMsg("hi")}, kudos: 1e6, wantLen: 300, wantCtx: 4096, wantModels: []string{"koboldcpp/Small-7B", "koboldcpp/Fimbulvetr-11B-v2"}},
		{name: "comma list", req: Request{Models: []string{"Small-7B,Fimbulvetr-11B-v2"}, Messages: userMsg("hi")}, kudos: 1e6, wantLen: 300, wantCtx: 4096, wantModels: []string{"koboldcpp/Small-7B", "koboldcpp/Fimbulvetr-11B-v2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := svc.prepare(tt.req, tt.kudos)
			if err != nil {
				t.Fatal(err)
			}
			ml, ctx := *p.Horde.Params.MaxLength, *p.Horde.Params.MaxContextLength
			if tt.wantLen != 0 && ml != tt.wantLen {
				t.Errorf("max_length = %d, want %d", ml, tt.wantLen)
			}
			if ctx != tt.wantCtx {
				t.Errorf("max_context_length = %d, want %d", ctx, tt.wantCtx)
			}
			if ctx < ml || ml < hordeapi.MinMaxLength {
				t.Errorf("ranges broken: ctx %d, len %d", ctx, ml)
			}
			if p.Limited != tt.wantLimit || p.KudosLimited != tt.wantKudos || p.Horde.AllowDowngrade != tt.wantDown {
				t.Errorf("limited=%v kudos=%v downgrade=%v", p.Limited, p.KudosLimited, p.Horde.AllowDowngrade)
			}
			if tt.wantKudos && ml > 512 {
				t.Errorf("kudos-limited max_length %d above the threshold", ml)
			}
			if tt.wantModels != nil && strings.Join(p.Horde.Models, ",") != strings.Join(tt.wantModels, ",") {
				t.Errorf("models = %v", p.Horde.Models)
			}
			if p.Horde.ValidatedBackends == nil || !*p.Horde.ValidatedBackends || p.Horde.SlowWorkers == nil || !*p.Horde.SlowWorkers {
				t.Error("validated_backends and slow_workers must be sent explicitly")
			}
			if p.PromptTokens+ml > ctx {
				t.Errorf("prompt %d + answer %d exceed context %d", p.PromptTokens, ml, ctx)
			}
		})
	}
}

func TestPrepareTrimsHistory(t *testing.T) {
	svc, _ := preparedService(t, DefaultConfig(), hordetest.WithWorkers(
		hordetest.Worker{Name: "a", Models: []string{"koboldcpp/Tiny-7B"}, MaxLength: 128, MaxContextLength: 512},
	))
	msgs := []prompt.Message{{Role: "system", Content: "You are terse."}}
	for i := 0; i < 60; i++ {
		msgs = append(msgs, prompt.Message{Role: "user", Content: strings.Repeat("question ", 10)}, prompt.Message{Role: "assistant", Content: strings.Repeat("answer ", 10)})
	}
	msgs = append(msgs, prompt.Message{Role: "user", Content: "the newest question"})
	p, err := svc.prepare(Request{Messages: msgs}, 1e6)
	if err != nil {
		t.Fatal(err)
	}
	if p.Dropped == 0 {
		t.Fatal("nothing dropped from a history far over the context")
	}
	if !strings.Contains(p.Horde.Prompt, "You are terse.") || !strings.Contains(p.Horde.Prompt, "the newest question") {
		t.Errorf("system prompt or newest message lost:\n%s", p.Horde.Prompt)
	}
	if p.PromptTokens > 512-*p.Horde.Params.MaxLength {
		t.Errorf("prompt tokens %d over budget", p.PromptTokens)
	}
}

func TestPrepareStopsAndParams(t *testing.T) {
	svc, _ := preparedService(t, DefaultConfig())
	p, err := svc.prepare(Request{Models: []string{"Hermes-3-Llama-3.1-8B"}, Messages: userMsg("hi"), Params: Params{
		Stop: []string{"\nUser:", "\nUser:"}, FrequencyPenalty: hordeapi.Ptr(0.4), TopP: hordeapi.Ptr(0.0), Seed: hordeapi.Ptr(int64(42)), N: 2,
	}}, 1e6)
	if err != nil {
		t.Fatal(err)
	}
	hp := p.Horde.Params
	if p.Template != "chatml" {
		t.Errorf("template = %s", p.Template)
	}
	stops := strings.Join(hp.StopSequence, "|")
	if !strings.Contains(stops, "<|im_end|>") || strings.Count(stops, "\nUser:") != 1 {
		t.Errorf("stops = %q", hp.StopSequence)
	}
	if *hp.RepPen != 1.2 || *hp.TopP != 0.001 || *hp.SamplerSeed != 42 || *hp.N != 2 {
		t.Errorf("params = rep_pen %v top_p %v seed %v n %v", *hp.RepPen, *hp.TopP, *hp.SamplerSeed, *hp.N)
	}
	raw, err := svc.prepare(Request{Prompt: "Once upon a time"}, 1e6)
	if err != nil || raw.Template != "raw" || raw.Horde.Prompt != "Once upon a time" {
		t.Fatalf("raw = %+v, %v", raw, err)
	}
}

func TestPrepareRejects(t *testing.T) {
	svc, _ := preparedService(t, DefaultConfig())
	tests := []struct {
		name  string
		req   Request
		code  Code
		param string
	}{
		{name: "nothing", req: Request{}, code: CodeInvalidRequest, param: "messages"},
		{name: "temperature", req: Request{Messages: userMsg("x"), Params: Params{Temperature: hordeapi.Ptr(9.0)}}, code: CodeInvalidRequest, param: "temperature"},
		{name: "top_k", req: Request{Messages: userMsg("x"), Params: Params{TopK: hordeapi.Ptr(500)}}, code: CodeInvalidRequest, param: "top_k"},
		{name: "n", req: Request{Messages: userMsg("x"), Params: Params{N: 50}}, code: CodeInvalidRequest, param: "n"},
		{name: "max_tokens", req: Request{Messages: userMsg("x"), Params: Params{MaxTokens: hordeapi.Ptr(0)}}, code: CodeInvalidRequest, param: "max_tokens"},
		{name: "empty stop", req: Request{Messages: userMsg("x"), Params: Params{Stop: []string{""}}}, code: CodeInvalidRequest, param: "stop"},
		{name: "too many stops", req: Request{Messages: userMsg("x"), Params: Params{Stop: strings.Split(strings.Repeat("a,", 20), ",")[:20]}}, code: CodeInvalidRequest, param: "stop"},
		{name: "unknown model", req: Request{Models: []string{"gpt-4o"}, Messages: userMsg("x")}, code: CodeUnknownModel, param: "model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.prepare(tt.req, 0)
			e := Classify(err)
			if e == nil || e.Code != tt.code || e.Param != tt.param {
				t.Fatalf("err = %#v, want %s on %s", e, tt.code, tt.param)
			}
		})
	}
}

func TestPrepareNoWorkersNamesAlternatives(t *testing.T) {
	svc, fake := preparedService(t, DefaultConfig())
	fake.RemoveWorker("fake-koboldcpp-fimbulvetr")
	if err := svc.RefreshModels(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := svc.prepare(Request{Models: []string{"koboldcpp/Fimbulvetr-11B-v2"}, Messages: userMsg("x")}, 0)
	e := Classify(err)
	if e.Code != CodeUnknownModel && e.Code != CodeNoWorkers {
		t.Fatalf("err = %#v", e)
	}
}

func TestUpfrontRule(t *testing.T) {
	if got := upfrontThreshold(0, 0); got != 512 {
		t.Errorf("idle threshold = %d", got)
	}
	if got := upfrontThreshold(10, 1000); got != 256 {
		t.Errorf("busy threshold = %d", got)
	}
	if got := upfrontThreshold(20, 100); got != 512 {
		t.Errorf("threshold = %d", got) // 512+100-90 clamps to 512
	}
	if got := upfrontCost(1024, 21, 2); got != 2048 {
		t.Errorf("cost = %v", got)
	}
	for name, want := range map[string]float64{"koboldcpp/Fimbulvetr-11B-v2": 11, "Mixtral-8x7B-Instruct": 56, "Qwen2.5-0.5B": 0.5, "koboldcpp/Tiefighter": 0, "L3-8B-Stheno-v3.2": 8} {
		if got := largestParams([]string{name}); got != want {
			t.Errorf("largestParams(%q) = %v, want %v", name, got, want)
		}
	}
}
