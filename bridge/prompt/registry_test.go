package prompt

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestForModel(t *testing.T) {
	reg := NewRegistry()
	tests := []struct{ model, want string }{
		{"koboldcpp/Fimbulvetr-11B-v2", "alpaca"},
		{"aphrodite/NousResearch/Hermes-3-Llama-3.1-8B", "chatml"},
		{"koboldcpp/L3-8B-Stheno-v3.2", "llama3"},
		{"aphrodite/Sao10K/L3.1-8B-Niitama-v1.1", "llama3"},
		{"koboldcpp/Mistral-Nemo-Instruct-2407", "mistral-tekken"},
		{"koboldcpp/MN-12B-Lyra-v4", "mistral-tekken"},
		{"koboldcpp/MN-12B-Mag-Mell-R1", "chatml"},
		{"koboldcpp/gemma-2-9b-it", "gemma"},
		{"koboldcpp/Tiger-Gemma-9B-v3", "gemma"},
		{"koboldcpp/Phi-3-mini", "phi3"},
		{"koboldcpp/Phi-3.5-mini-instruct", "phi3"},
		{"aphrodite/CohereForAI/c4ai-command-r-v01", "command-r"},
		{"koboldcpp/aya-expanse-8b", "command-r"},
		{"koboldcpp/Pygmalion-2-13b", "metharme"},
		{"koboldcpp/Mythalion-13b", "metharme"},
		{"koboldcpp/glm-4-9b-chat", "glm4"},
		{"DeepSeek-V3", "deepseek"},
		{"deepseek-ai/DeepSeek-V2.5", "deepseek"},
		{"koboldcpp/DeepSeek-R1-Distill-Qwen-14B", "deepseek"},
		{"koboldcpp/LLaMA2-13B-Tiefighter", "alpaca"},
		{"koboldcpp/LLaMA2-13B-Psyfighter2", "alpaca"},
		{"koboldcpp/MythoMax-L2-13b", "alpaca"},
		{"koboldcpp/Qwen2.5-14B-Instruct", "chatml"},
		{"aphrodite/Qwen/QwQ-32B", "chatml"},
		{"koboldcpp/dolphin-2.9-llama3-8b", "chatml"},
		{"koboldcpp/OpenHermes-2.5-Mistral-7B", "chatml"},
		{"koboldcpp/Mixtral-8x7B-Instruct-v0.1", "mistral"},
		{"koboldcpp/Mistral-7B-Instruct-v0.2", "mistral"},
		{"koboldcpp/Mistral-7B-Instruct-v0.3", "mistral-v3"},
		{"aphrodite/mistralai/Mistral-Small-Instruct-2409", "mistral-v3"},
		{"aphrodite/mistralai/Mistral-Small-24B-Instruct-2501", "mistral-v7-tekken"},
		{"koboldcpp/Mistral-Small-3.2-24B-Instruct-2506", "mistral-v7-tekken"},
		{"aphrodite/mistralai/Mistral-Large-Instruct-2411", "mistral-v7"},
		{"aphrodite/meta-llama/Meta-Llama-3.1-8B-Instruct", "llama3"},
		{"koboldcpp/Llama-3.3-70B-Instruct", "llama3"},
		{"koboldcpp/llama3-8b-instruct", "llama3"},
		{"aphrodite/nvidia/Llama-3.1-Nemotron-70B-Instruct-HF", "llama3"},
		{"koboldcpp/Llama-3_3-Nemotron-Super-49B-v1", "llama3"},
		{"koboldcpp/Llama-2-13b-chat-hf", "llama2"},
		{"koboldcpp/llama-30b-supercot", "alpaca"}, // LLaMA 1 30B, not Llama 3
		{"koboldcpp/WizardLM-2-7B", "vicuna"},
		{"koboldcpp/Nous-Capybara-34B", "vicuna"},
		{"koboldcpp/Nous-Hermes-Llama2-13b", "alpaca"}, // Hermes 1 is Alpaca, Hermes 2/3 ChatML
		{"koboldcpp/SomeBrandNewModel-13B", FallbackTemplate},
		{"", FallbackTemplate},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			if got := reg.ForModel(tt.model).Name(); got != tt.want {
				t.Errorf("ForModel(%q) = %s, want %s", tt.model, got, tt.want)
			}
			if got := reg.ForModel(strings.ToUpper(tt.model)).Name(); got != tt.want {
				t.Errorf("ForModel(upper %q) = %s, want %s", tt.model, got, tt.want)
			}
		})
	}
}

func TestOverride(t *testing.T) {
	reg := NewRegistry()
	mustOverride(t, reg, "*Stheno*", "chatml")
	mustOverride(t, reg, "koboldcpp/*", "metharme")
	mustOverride(t, reg, "aphrodite/org/exact-[0-9]", "vicuna")
	mustOverride(t, reg, "base-model?", "raw")

	tests := []struct{ model, want string }{
		{"koboldcpp/L3-8B-Stheno-v3.2", "chatml"},         // '*' spans the '/', case-insensitive
		{"aphrodite/Sao10K/L3-8B-STHENO-v3.2", "chatml"},  // first override wins
		{"koboldcpp/gemma-2-9b-it", "metharme"},           // before the built-in rules
		{"aphrodite/org/Exact-7", "vicuna"},               // classes work
		{"aphrodite/org/exact-77", "alpaca"},              // and do not over-match
		{"Base-Model1", "raw"},                            // '?' is one character
		{"aphrodite/google/gemma-2-9b-it", "gemma"},       // no override: rules apply
		{"aphrodite/Qwen/Qwen2.5-72B-Instruct", "chatml"}, // no override: rules apply
	}
	for _, tt := range tests {
		if got := reg.ForModel(tt.model).Name(); got != tt.want {
			t.Errorf("ForModel(%q) = %s, want %s", tt.model, got, tt.want)
		}
	}

	// Overriding the same pattern again replaces it in place.
	mustOverride(t, reg, "*STHENO*", "llama3")
	if got := reg.ForModel("koboldcpp/L3-8B-Stheno-v3.2").Name(); got != "llama3" {
		t.Errorf("after re-override: %s, want llama3", got)
	}
	// A fresh registry is unaffected.
	if got := NewRegistry().ForModel("koboldcpp/gemma-2-9b-it").Name(); got != "gemma" {
		t.Errorf("fresh registry: %s, want gemma", got)
	}
}

func mustOverride(tb testing.TB, reg *Registry, pattern, name string) {
	tb.Helper()
	if err := reg.Override(pattern, name); err != nil {
		tb.Fatalf("Override(%q, %q): %v", pattern, name, err)
	}
}

func TestOverrideErrors(t *testing.T) {
	reg := NewRegistry()
	tests := []struct {
		name, pattern, template string
		want                    error
	}{
		{"unknown template", "*", "llama5", ErrUnknownTemplate},
		{"empty template", "*", "", ErrUnknownTemplate},
		{"unclosed class", "koboldcpp/[abc", "chatml", ErrBadPattern},
		{"trailing escape", `model\`, "chatml", ErrBadPattern},
		{"empty pattern", "  ", "chatml", ErrBadPattern},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := reg.Override(tt.pattern, tt.template)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Override(%q, %q) = %v, want %v", tt.pattern, tt.template, err, tt.want)
			}
			// The error lists the valid names so a config author can fix it.
			for _, n := range []string{"chatml", "llama3", "raw"} {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("error %q does not list %q", err, n)
				}
			}
		})
	}
	if got := reg.ForModel("koboldcpp/gemma-2-9b-it").Name(); got != "gemma" {
		t.Errorf("failed overrides changed the registry: %s", got)
	}
}

func TestByNameAndNames(t *testing.T) {
	reg := NewRegistry()
	names := reg.Names()
	want := []string{"alpaca", "chatml", "command-r", "deepseek", "gemma", "glm4", "llama2", "llama3",
		"metharme", "mistral", "mistral-tekken", "mistral-v3", "mistral-v7", "mistral-v7-tekken", "phi3", "raw", "vicuna"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("Names() = %v, want %v", names, want)
	}
	for _, n := range names {
		tmpl, ok := reg.ByName(strings.ToUpper(n))
		if !ok || tmpl.Name() != n || tmpl.String() != n || tmpl.Description() == "" {
			t.Errorf("ByName(%q) = %v, %v", n, tmpl, ok)
		}
	}
	if _, ok := reg.ByName("nope"); ok {
		t.Error(`ByName("nope") found something`)
	}
	if tmpl, _ := reg.ByName("raw"); tmpl != Raw {
		t.Error(`ByName("raw") is not Raw`)
	}
	// Every rule's template exists, and no rule yields raw.
	for _, r := range modelRules {
		if _, ok := reg.ByName(r.template); !ok || r.template == "raw" {
			t.Errorf("rule %q -> %q", r.expr, r.template)
		}
	}
}

func TestRegistryConcurrent(t *testing.T) {
	reg := NewRegistry()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 100 {
				_ = reg.Override("pattern-"+string(rune('a'+i)), "chatml")
			}
		}()
		go func() {
			defer wg.Done()
			for range 100 {
				_ = reg.ForModel("koboldcpp/gemma-2-9b-it")
			}
		}()
	}
	wg.Wait()
}

func TestStopSequencesIsACopy(t *testing.T) {
	reg := NewRegistry()
	tmpl, _ := reg.ByName("chatml")
	s := tmpl.StopSequences()
	s[0] = "mutated"
	if tmpl.StopSequences()[0] != "<|im_end|>" {
		t.Error("StopSequences exposes the template's slice")
	}
	if len(Raw.StopSequences()) != 0 {
		t.Error("raw has stop sequences")
	}
	for _, n := range reg.Names() {
		tmpl, _ := reg.ByName(n)
		total := 0
		for _, s := range tmpl.StopSequences() {
			if s == "" {
				t.Errorf("%s: empty stop sequence", n)
			}
			total += len([]rune(s))
		}
		// The Horde allows at most 128 entries, 2000 characters in total,
		// leaving room for the caller's own.
		if len(tmpl.StopSequences()) > 8 || total > 200 {
			t.Errorf("%s: %d stop sequences, %d chars", n, len(tmpl.StopSequences()), total)
		}
	}
}
