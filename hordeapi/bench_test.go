package hordeapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// fullRequest sets every field and param a chat request can carry.
func fullRequest() *TextRequest {
	return &TextRequest{
		Prompt:            strings.Repeat("<|im_start|>user\nTell me about the Horde.<|im_end|>\n", 40),
		Models:            []string{"koboldcpp/Fimbulvetr-11B-v2", "aphrodite/NousResearch/Hermes-3-Llama-3.1-8B"},
		Workers:           []string{"0f1e2d3c-0000-4000-8000-000000000001"},
		TrustedWorkers:    true,
		ValidatedBackends: Ptr(true),
		SlowWorkers:       Ptr(true),
		ProxiedAccount:    "discord:123456789012345678",
		AllowDowngrade:    true,
		Webhook:           "https://bot.example.org/horde/webhook/abcdef",
		Params: &TextParams{
			N: Ptr(2), MaxContextLength: Ptr(8192), MaxLength: Ptr(512),
			Temperature: Ptr(0.7), TopP: Ptr(0.9), TopK: Ptr(40), TopA: Ptr(0.0), Typical: Ptr(1.0), TFS: Ptr(1.0),
			MinP: Ptr(0.05), RepPen: Ptr(1.1), RepPenRange: Ptr(1024), RepPenSlope: Ptr(0.7),
			SamplerOrder: []int{6, 0, 1, 3, 4, 2, 5}, StopSequence: []string{"<|im_end|>", "<|im_start|>"},
			SingleLine: Ptr(false), SmoothingFactor: Ptr(0.0), DynatempRange: Ptr(0.0), DynatempExponent: Ptr(1.0),
		},
	}
}

func statusWith20Generations() []byte {
	var b strings.Builder
	b.WriteString(`{"finished":20,"processing":0,"restarted":0,"waiting":0,"done":true,"faulted":false,"wait_time":0,"queue_position":0,"kudos":42,"is_possible":true,"generations":[`)
	for i := 0; i < 20; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"text":%q,"seed":0,"worker_id":"w-%d","worker_name":"Worker %d","model":"koboldcpp/Fimbulvetr-11B-v2","state":"ok","gen_metadata":[]}`,
			strings.Repeat("The AI Horde is a crowdsourced cluster. ", 25), i, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func BenchmarkEncodeSubmit(b *testing.B) {
	req := fullRequest()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeStatus20(b *testing.B) {
	raw := statusWith20Generations()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var st TextStatus
		if err := json.Unmarshal(raw, &st); err != nil {
			b.Fatal(err)
		}
		if len(st.Generations) != 20 {
			b.Fatal("lost generations")
		}
	}
}
