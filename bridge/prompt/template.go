package prompt

import (
	"slices"
	"strings"
	"unicode"
)

// spec declares one instruct template. Every template is one literal of
// this struct; the renderer has no per-template code.
type spec struct {
	name, desc string
	prefix     string    // written once at the very start (never the BOS, see the package doc)
	system     [2]string // open, close of a system turn
	user       [2]string
	assistant  [2]string
	gen        string // ends the prompt: the assistant opener (empty where "[/INST]" already is one)

	// fold: the template has no system role; the leading system text goes
	// into the first user turn as foldOpen + system + foldClose + content.
	fold                bool
	foldOpen, foldClose string
	// strict: the template demands user/assistant alternation starting with
	// a user turn, so runs of one role merge and a user turn is added in
	// front of an assistant-first history (and of a system-only list).
	strict bool
	// merge: runs of one role merge although the template is not strict
	// (plain-text formats where a repeated header reads badly).
	merge bool
	// headSystemOnly: a system turn is understood only at the start; later
	// system messages render as user turns.
	headSystemOnly bool
	// flatten (raw only): every message is plain text of one turn.
	flatten bool
	raw     bool
	stops   []string
}

// mergeSep joins merged messages of one turn.
const mergeSep = "\n\n"

// builtinSpecs are the built-in templates. Markers follow each family's
// tokenizer_config.json chat template (and llama.cpp's llm_chat_apply_template
// where the Jinja is ambiguous), BOS omitted.
var builtinSpecs = []spec{
	{
		name: "chatml", desc: "ChatML (Qwen, Hermes 2/3, Dolphin, Yi, many merges)",
		system:    [2]string{"<|im_start|>system\n", "<|im_end|>\n"},
		user:      [2]string{"<|im_start|>user\n", "<|im_end|>\n"},
		assistant: [2]string{"<|im_start|>assistant\n", "<|im_end|>\n"},
		gen:       "<|im_start|>assistant\n",
		stops:     []string{"<|im_end|>", "<|im_start|>", "<|endoftext|>"},
	},
	{
		name: "llama3", desc: "Llama 3.x Instruct (and Nemotron, Stheno, other L3 finetunes)",
		system:    [2]string{"<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"},
		user:      [2]string{"<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"},
		assistant: [2]string{"<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"},
		gen:       "<|start_header_id|>assistant<|end_header_id|>\n\n",
		stops:     []string{"<|eot_id|>", "<|start_header_id|>", "<|eom_id|>", "<|end_of_text|>"},
	},
	{
		// HF Llama-2-chat: [INST] <<SYS>>\n...\n<</SYS>>\n\nuser [/INST] answer </s>.
		// The <s> HF puts before every later [INST] is left out like the first one.
		name: "llama2", desc: "Llama 2 Chat ([INST] with <<SYS>>)",
		user:      [2]string{"[INST] ", " [/INST]"},
		assistant: [2]string{" ", " </s>"},
		fold:      true, foldOpen: "<<SYS>>\n", foldClose: "\n<</SYS>>\n\n",
		strict: true,
		stops:  []string{"[INST]", "[/INST]", "</s>", "<<SYS>>"},
	},
	{
		// Mistral tokenizer V1 (Mistral 7B v0.1/v0.2, Mixtral 8x7B):
		// " [INST] user [/INST] answer</s>" per Mistral's cookbook.
		name: "mistral", desc: "Mistral V1 [INST] (Mistral 7B v0.1/v0.2, Mixtral 8x7B)",
		user:      [2]string{" [INST] ", " [/INST]"},
		assistant: [2]string{" ", "</s>"},
		fold:      true, foldClose: "\n\n",
		strict: true,
		stops:  []string{"[INST]", "[/INST]", "</s>"},
	},
	{
		name: "mistral-v3", desc: "Mistral V2/V3 [INST] (Mistral 7B v0.3, Mixtral 8x22B, Large 2407, Small 2409)",
		user:      [2]string{"[INST] ", "[/INST]"},
		assistant: [2]string{" ", "</s>"},
		fold:      true, foldClose: "\n\n",
		strict: true,
		stops:  []string{"[INST]", "[/INST]", "</s>"},
	},
	{
		name: "mistral-tekken", desc: "Mistral V3-Tekken [INST] without spaces (Mistral Nemo, Ministral, Pixtral 12B)",
		user:      [2]string{"[INST]", "[/INST]"},
		assistant: [2]string{"", "</s>"},
		fold:      true, foldClose: "\n\n",
		strict: true,
		stops:  []string{"[INST]", "[/INST]", "</s>"},
	},
	{
		name: "mistral-v7", desc: "Mistral V7 with [SYSTEM_PROMPT] (Mistral Large 2411)",
		system:    [2]string{"[SYSTEM_PROMPT] ", "[/SYSTEM_PROMPT]"},
		user:      [2]string{"[INST] ", "[/INST]"},
		assistant: [2]string{" ", "</s>"},
		strict:    true,
		stops:     []string{"[INST]", "[/INST]", "[SYSTEM_PROMPT]", "</s>"},
	},
	{
		name: "mistral-v7-tekken", desc: "Mistral V7-Tekken with [SYSTEM_PROMPT] (Mistral Small 3.x, Magistral, Devstral)",
		system:    [2]string{"[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"},
		user:      [2]string{"[INST]", "[/INST]"},
		assistant: [2]string{"", "</s>"},
		strict:    true,
		stops:     []string{"[INST]", "[/INST]", "[SYSTEM_PROMPT]", "</s>"},
	},
	{
		name: "alpaca", desc: "Alpaca ### Instruction / ### Response (KoboldAI-era Llama 2 and Mistral merges; the fallback)",
		system:         [2]string{"", "\n\n"},
		user:           [2]string{"### Instruction:\n", "\n\n"},
		assistant:      [2]string{"### Response:\n", "\n\n"},
		gen:            "### Response:\n",
		merge:          true,
		headSystemOnly: true,
		stops:          []string{"### Instruction:", "### Response:", "### Input:"},
	},
	{
		// FastChat vicuna_v1.1: "SYS USER: u ASSISTANT: a</s>USER: u ASSISTANT:".
		name: "vicuna", desc: "Vicuna 1.1 USER: / ASSISTANT: (Vicuna, WizardLM, Nous-Capybara)",
		system:         [2]string{"", " "},
		user:           [2]string{"USER: ", " "},
		assistant:      [2]string{"ASSISTANT: ", "</s>"},
		gen:            "ASSISTANT:",
		merge:          true,
		headSystemOnly: true,
		stops:          []string{"USER:", "ASSISTANT:", "</s>"},
	},
	{
		// Gemma has no system role; Gemma 3's template folds it into the
		// first user turn followed by a blank line, which Gemma 2 also reads well.
		name: "gemma", desc: "Gemma <start_of_turn> (Gemma 1/2/3, no system role)",
		user:      [2]string{"<start_of_turn>user\n", "<end_of_turn>\n"},
		assistant: [2]string{"<start_of_turn>model\n", "<end_of_turn>\n"},
		gen:       "<start_of_turn>model\n",
		fold:      true, foldClose: "\n\n",
		strict: true,
		stops:  []string{"<end_of_turn>", "<start_of_turn>"},
	},
	{
		name: "phi3", desc: "Phi-3 / Phi-3.5 <|user|> <|end|>",
		system:    [2]string{"<|system|>\n", "<|end|>\n"},
		user:      [2]string{"<|user|>\n", "<|end|>\n"},
		assistant: [2]string{"<|assistant|>\n", "<|end|>\n"},
		gen:       "<|assistant|>\n",
		stops:     []string{"<|end|>", "<|user|>", "<|system|>", "<|endoftext|>"},
	},
	{
		name: "command-r", desc: "Cohere Command-R / R+ / Aya",
		system:    [2]string{"<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>", "<|END_OF_TURN_TOKEN|>"},
		user:      [2]string{"<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", "<|END_OF_TURN_TOKEN|>"},
		assistant: [2]string{"<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", "<|END_OF_TURN_TOKEN|>"},
		gen:       "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
		strict:    true,
		stops:     []string{"<|END_OF_TURN_TOKEN|>", "<|START_OF_TURN_TOKEN|>"},
	},
	{
		name: "metharme", desc: "Metharme / Pygmalion-2 <|system|><|user|><|model|>",
		system:    [2]string{"<|system|>", ""},
		user:      [2]string{"<|user|>", ""},
		assistant: [2]string{"<|model|>", ""},
		gen:       "<|model|>",
		stops:     []string{"<|user|>", "<|system|>", "<|model|>", "</s>"},
	},
	{
		// The HF glm-4-9b-chat template ends with "<|assistant|>" and the model
		// writes the newline itself; like llama.cpp we write it, matching the
		// history turns.
		name: "glm4", desc: "GLM-4 [gMASK]<sop><|user|> (GLM-4 9B, GLM-4-0414)",
		prefix:    "[gMASK]<sop>",
		system:    [2]string{"<|system|>\n", ""},
		user:      [2]string{"<|user|>\n", ""},
		assistant: [2]string{"<|assistant|>\n", ""},
		gen:       "<|assistant|>\n",
		stops:     []string{"<|user|>", "<|observation|>", "<|system|>", "<|endoftext|>"},
	},
	{
		// DeepSeek V2.5/V3: the system prompt is bare text right after the
		// BOS; the bars are full-width (U+FF5C) and ▁ is U+2581.
		name: "deepseek", desc: "DeepSeek V2.5/V3/R1 <｜User｜><｜Assistant｜>",
		system:         [2]string{"", ""},
		user:           [2]string{"<｜User｜>", ""},
		assistant:      [2]string{"<｜Assistant｜>", "<｜end▁of▁sentence｜>"},
		gen:            "<｜Assistant｜>",
		headSystemOnly: true,
		stops:          []string{"<｜User｜>", "<｜end▁of▁sentence｜>"},
	},
	{
		name: "raw", desc: "No template: the message contents joined by blank lines, for /v1/completions",
		fold: true, foldClose: mergeSep,
		strict:  true,
		flatten: true,
		raw:     true,
	},
}

// turn holds the measured markers around one role's turn.
type turn struct{ open, close sstr }

// Template is one instruct format. Templates are immutable and safe for
// concurrent use; get them from a Registry or use Raw.
type Template struct {
	name, desc string
	prefix     sstr
	turns      [3]turn // indexed by role
	gen        sstr
	sep        sstr
	foldOpen   sstr
	foldClose  sstr

	fold, strict, merge, headSystemOnly, flatten, raw bool

	stops []string
}

func newTemplate(s spec) *Template {
	if s.fold && !s.strict {
		// The fitter relies on it: the first kept turn of a folding template
		// is always a user turn, real or added.
		panic("prompt: template " + s.name + " folds the system prompt but is not strict")
	}
	t := &Template{
		name:           s.name,
		desc:           s.desc,
		prefix:         measure(s.prefix),
		gen:            measure(s.gen),
		sep:            measure(mergeSep),
		foldOpen:       measure(s.foldOpen),
		foldClose:      measure(s.foldClose),
		fold:           s.fold,
		strict:         s.strict,
		merge:          s.merge || s.strict,
		headSystemOnly: s.headSystemOnly,
		flatten:        s.flatten,
		raw:            s.raw,
		stops:          s.stops,
	}
	for r, m := range [3][2]string{roleSystem: s.system, roleUser: s.user, roleAssistant: s.assistant} {
		t.turns[r] = turn{measure(m[0]), measure(m[1])}
	}
	return t
}

// builtins are the built-in templates by name, built once.
var builtins = func() map[string]*Template {
	m := make(map[string]*Template, len(builtinSpecs))
	for _, s := range builtinSpecs {
		m[s.name] = newTemplate(s)
	}
	return m
}()

// Raw is the "raw" template: no markers, no stop sequences, for callers of
// /v1/completions that send a finished prompt. A single message renders as
// its content unchanged; several are joined by blank lines.
var Raw = builtins["raw"]

// Name returns the template's registry name, such as "chatml".
func (t *Template) Name() string { return t.name }

// Description says which model families use the template.
func (t *Template) Description() string { return t.desc }

// String returns the name, for logs.
func (t *Template) String() string { return t.name }

// StopSequences returns the template's turn markers, to send as the Horde's
// stop_sequence so the model stops instead of writing the user's next turn.
// The slice is a copy; Raw has none.
func (t *Template) StopSequences() []string { return slices.Clone(t.stops) }

// Render renders msgs into the full prompt, ending with the assistant turn
// opener. It fails only for an empty list or an unknown role.
func (t *Template) Render(msgs []Message) (string, error) {
	if err := validate(msgs); err != nil {
		return "", err
	}
	l := newLayout(t, msgs)
	return l.build(-1), nil
}

// CleanOutput cleans one generation from the Horde. The text is cut at the
// first occurrence of any stop marker (the template's own and extraStops):
// this removes a trailing stop string, which the Horde includes in the text,
// as an exact suffix, and drops whatever the model ran on to after it.
// Nothing is ever stripped as a character set: with stop "<|im_end|>",
// "Hello im" stays as it is. stoppedByMarker reports a cut.
//
// Whitespace then goes from the end when a marker was cut (it belonged to
// the turn separator), and for chat templates always from both ends (models
// answer " Hello" after "[/INST]" or "ASSISTANT:"). Raw keeps the text as the
// model wrote it unless a stop cut it.
func (t *Template) CleanOutput(text string, extraStops []string) (clean string, stoppedByMarker bool) {
	cut := -1
	find := func(stops []string) {
		for _, s := range stops {
			if s == "" {
				continue
			}
			// Only the part before the best cut so far can hold an earlier one.
			hay := text
			if cut >= 0 {
				hay = text[:min(len(text), cut+len(s)-1)]
			}
			if i := strings.Index(hay, s); i >= 0 && (cut < 0 || i < cut) {
				cut = i
			}
		}
	}
	find(t.stops)
	find(extraStops)
	if cut >= 0 {
		text = text[:cut]
		stoppedByMarker = true
	}
	if stoppedByMarker || !t.raw {
		text = strings.TrimRightFunc(text, unicode.IsSpace)
	}
	if !t.raw {
		text = strings.TrimLeftFunc(text, unicode.IsSpace)
	}
	return text, stoppedByMarker
}
