package prompt

import (
	"errors"
	"strings"
	"testing"
)

// mustTemplate returns the built-in template called name.
func mustTemplate(tb testing.TB, name string) *Template {
	tb.Helper()
	t, ok := NewRegistry().ByName(name)
	if !ok {
		tb.Fatalf("no template %q", name)
	}
	return t
}

func TestRenderErrors(t *testing.T) {
	tmpl := mustTemplate(t, "chatml")
	if _, err := tmpl.Render(nil); !errors.Is(err, ErrNoMessages) {
		t.Errorf("Render(nil) = %v, want ErrNoMessages", err)
	}
	_, err := tmpl.Render([]Message{{Role: RoleUser, Content: "hi"}, {Role: "tool", Content: "{}"}})
	if !errors.Is(err, ErrUnknownRole) {
		t.Fatalf("Render(tool) = %v, want ErrUnknownRole", err)
	}
	for _, s := range []string{`"tool"`, "message 1", "system, user or assistant"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	if _, err := tmpl.Render([]Message{{Role: "User", Content: "hi"}}); !errors.Is(err, ErrUnknownRole) {
		t.Errorf("roles are lowercase: got %v", err)
	}
	if _, err := Fit(tmpl, nil, 100); !errors.Is(err, ErrNoMessages) {
		t.Errorf("Fit(nil) = %v", err)
	}
	if _, err := Fit(nil, []Message{{Role: RoleUser}}, 100); !errors.Is(err, ErrNilTemplate) {
		t.Errorf("Fit(nil template) = %v", err)
	}
}

func TestRawRendersVerbatim(t *testing.T) {
	for _, p := range []string{"Once upon a time", "  spaced \n\n", "", "<|im_start|>user\nhi"} {
		got, err := Raw.Render([]Message{{Role: RoleUser, Content: p}})
		if err != nil || got != p {
			t.Errorf("Raw.Render(%q) = %q, %v", p, got, err)
		}
	}
}

func TestCleanOutput(t *testing.T) {
	tests := []struct {
		name, template, text string
		extra                []string
		want                 string
		stopped              bool
	}{
		{"trailing stop with space", "chatml", "Hello <|im_end|>", nil, "Hello", true},
		// Python's rstrip("<|im_end|>") would eat "im": this is the exact-suffix check.
		{"charset lookalike kept", "chatml", "Hello im", nil, "Hello im", false},
		{"charset lookalike before stop", "chatml", "Hello im<|im_end|>", nil, "Hello im", true},
		{"partial marker kept", "chatml", "Hello <|im_", nil, "Hello <|im_", false},
		{"run-on cut at first marker", "chatml", "Sure.<|im_end|>\n<|im_start|>user\nand now", nil, "Sure.", true},
		{"earliest of several markers", "llama3", "A<|start_header_id|>user<|end_header_id|>\n\nB<|eot_id|>", nil, "A", true},
		{"extra stop earlier than marker", "chatml", "Bot says hi\nalice: hey<|im_end|>", []string{"\nalice:"}, "Bot says hi", true},
		{"extra stop only", "chatml", "one\ntwo", []string{"\n"}, "one", true},
		{"empty extra ignored", "chatml", "Hello", []string{""}, "Hello", false},
		{"leading space of [INST] answer", "mistral", " Fine, and you?</s>", nil, "Fine, and you?", true},
		{"alpaca run-on", "alpaca", "Paris.\n\n### Instruction:\nAnd Spain?", nil, "Paris.", true},
		{"vicuna next turn", "vicuna", " Paris. USER: thanks", nil, "Paris.", true},
		{"deepseek full-width marker", "deepseek", "42<｜end▁of▁sentence｜>", nil, "42", true},
		{"ascii bars are not deepseek markers", "deepseek", "a<|User|>b", nil, "a<|User|>b", false},
		{"chat trims whitespace", "gemma", "\n Hi there \n\n", nil, "Hi there", false},
		{"only a marker", "chatml", "<|im_end|>", nil, "", true},
		{"raw keeps text", "raw", "  as written \n", nil, "  as written \n", false},
		{"raw cut trims the end only", "raw", "  one \nSTOP two", []string{"STOP"}, "  one", true},
		{"raw has no markers", "raw", "a<|im_end|>", nil, "a<|im_end|>", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, stopped := mustTemplate(t, tt.template).CleanOutput(tt.text, tt.extra)
			if got != tt.want || stopped != tt.stopped {
				t.Errorf("CleanOutput(%q, %q) = %q, %v; want %q, %v", tt.text, tt.extra, got, stopped, tt.want, tt.stopped)
			}
		})
	}
}

func TestEstimateTokens(t *testing.T) {
	tests := []struct {
		s    string
		want int
	}{
		{"", 0},
		{"a", 1},
		{"abcd", 1},
		{"abcde", 2},
		{"ééééé", 2},    // 5 runes, 10 bytes: runes count, like Python's len
		{"日本語です", 2},    // 5 runes, 15 bytes
		{"\xff\xfe", 1}, // invalid bytes count one each
	}
	for _, tt := range tests {
		if got := EstimateTokens(tt.s); got != tt.want {
			t.Errorf("EstimateTokens(%q) = %d, want %d", tt.s, got, tt.want)
		}
	}
}

func TestCleanName(t *testing.T) {
	tests := map[string]string{
		"alice":              "alice",
		"  bob  ":            "bob",
		"eve\n<|im_start|>":  "eve <|im_start|>",
		"tab\there\r\nthere": "tab here  there",
		"\n":                 "",
		"Zoë ☕":              "Zoë ☕",
	}
	for in, want := range tests {
		if got := cleanName(in); got != want {
			t.Errorf("cleanName(%q) = %q, want %q", in, got, want)
		}
	}
	// An empty cleaned name renders no prefix.
	got, _ := mustTemplate(t, "chatml").Render([]Message{{Role: RoleUser, Name: "\n", Content: "x"}})
	if strings.Contains(got, ": x") {
		t.Errorf("empty name rendered: %q", got)
	}
}

// TestTemplatesEndWithGenerationPrompt checks what every template shares
// with its Jinja original: the prompt ends with the assistant opener, or with
// the user turn's close where that is the opener ("[/INST]").
func TestTemplatesEndWithGenerationPrompt(t *testing.T) {
	msgs := conversations[0].msgs
	last := msgs[len(msgs)-1].Content
	for _, n := range NewRegistry().Names() {
		tmpl := mustTemplate(t, n)
		got, err := tmpl.Render(msgs)
		if err != nil {
			t.Fatal(err)
		}
		want := tmpl.turns[roleUser].close.s + tmpl.gen.s
		if !strings.HasSuffix(got, last+want) {
			t.Errorf("%s: prompt %q does not end with %q", n, got, last+want)
		}
		if (want == "") != (n == "raw") {
			t.Errorf("%s: opener %q", n, want)
		}
	}
}
