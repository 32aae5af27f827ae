package prompt

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Errors of Registry.Override; wrapped with the offending value and the
// valid template names.
var (
	ErrUnknownTemplate = errors.New("prompt: unknown template")
	ErrBadPattern      = errors.New("prompt: bad model pattern")
)

// FallbackTemplate is the template for models no rule knows: Alpaca. The
// Horde's text pool is mostly KoboldAI-era Llama 2 / Mistral merges
// (Tiefighter, MythoMax, Fimbulvetr, ...) that were tuned or merged on
// Alpaca-style data, and its markers are plain words: a model that was never
// trained on them still reads a sensible instruction/response layout and the
// stop strings still work, whereas special-token markers (ChatML's <|im_start|>)
// fall apart into odd sub-word pieces in a model without those tokens.
const FallbackTemplate = "alpaca"

// modelRules map Horde model names (lowercased; such as
// "koboldcpp/L3-8B-Stheno-v3.2" or "aphrodite/NousResearch/Hermes-3-Llama-3.1-8B")
// to templates. The first match wins, so finetunes whose format differs
// from their base model's come before the base families.
var modelRules = []struct{ expr, template string }{
	{`deepseek[-_ ]?(v2\.5|v3|r1)`, "deepseek"}, // before qwen/llama: R1 distills use DeepSeek's format
	{`command-?r|c4ai|aya-(23|expanse)`, "command-r"},
	{`pygmalion-?2|metharme|mythalion`, "metharme"},
	{`glm-?4`, "glm4"},
	{`phi-?3`, "phi3"},
	{`gemma`, "gemma"},
	// Llama 2 and Mistral merges known to expect Alpaca (explicit, so that no
	// broader rule below claims them).
	{`tiefighter|psyfighter|psyonic|estopia|mythomax|fimbulvetr|kunoichi|silicon-?maid|alpaca`, "alpaca"},
	// ChatML finetunes of Llama/Mistral bases come before those bases.
	{`hermes-?[23]|dolphin|qwen|qwq|chatml|mag-?mell|yi-.*chat`, "chatml"},
	{`nemotron`, "llama3"}, // the Llama-3.x-Nemotron family
	{`llama-?3([^0-9]|$)|(^|[/_ .-])l3(\.[0-9]+)?-`, "llama3"},
	{`llama-?2-(.*-)?chat|codellama-.*instruct`, "llama2"},
	{`mistral-small-(3|24b)|mistral-small-.*25[0-9][0-9]|magistral|devstral`, "mistral-v7-tekken"},
	{`mistral-large-.*2411`, "mistral-v7"},
	{`mistral-nemo|ministral|pixtral-12b|(^|/)mn-`, "mistral-tekken"},
	{`mistral-7b-instruct-v0\.3|mixtral-8x22b-instruct|mistral-large-(instruct-)?2407|mistral-small-(instruct-)?2409|codestral`, "mistral-v3"},
	{`mistral|mixtral`, "mistral"},
	{`vicuna|wizardlm|capybara`, "vicuna"},
}

type modelRule struct {
	re *regexp.Regexp
	t  *Template
}

var compiledRules = func() []modelRule {
	rs := make([]modelRule, len(modelRules))
	for i, r := range modelRules {
		t, ok := builtins[r.template]
		if !ok {
			panic("prompt: rule for unknown template " + r.template)
		}
		rs[i] = modelRule{regexp.MustCompile(r.expr), t}
	}
	return rs
}()

// Registry chooses a template per model. The zero value is not usable; use
// NewRegistry. It is safe for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	overrides []override // in the order added; the first match wins
}

type override struct {
	pattern string // lowercased, '/' swapped, see globKey
	t       *Template
}

// NewRegistry returns a registry holding the built-in templates and rules.
func NewRegistry() *Registry { return &Registry{} }

// Names returns the names of all templates, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ByName returns the template with that name (case-insensitive).
func (r *Registry) ByName(name string) (*Template, bool) {
	t, ok := builtins[strings.ToLower(strings.TrimSpace(name))]
	return t, ok
}

// Override makes models matching pattern use the named template. Overrides
// are checked before the built-in rules, in the order they were added;
// overriding the same pattern again replaces its template. The pattern is a
// case-insensitive path.Match glob over the whole model name, except that '*'
// and '?' also match '/', so "*stheno*" matches "koboldcpp/L3-8B-Stheno-v3.2".
func (r *Registry) Override(pattern, templateName string) error {
	t, ok := r.ByName(templateName)
	if !ok {
		return fmt.Errorf("%w %q (valid: %s)", ErrUnknownTemplate, templateName, strings.Join(r.Names(), ", "))
	}
	key := globKey(pattern)
	if strings.TrimSpace(pattern) == "" {
		return fmt.Errorf("%w: empty pattern (templates: %s)", ErrBadPattern, strings.Join(r.Names(), ", "))
	}
	if _, err := path.Match(key, ""); err != nil {
		return fmt.Errorf("%w %q: %w (templates: %s)", ErrBadPattern, pattern, err, strings.Join(r.Names(), ", "))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.overrides {
		if r.overrides[i].pattern == key {
			r.overrides[i].t = t
			return nil
		}
	}
	r.overrides = append(r.overrides, override{pattern: key, t: t})
	return nil
}

// ForModel returns the template for a Horde model name: the first matching
// override, else the first matching built-in rule, else the fallback
// (FallbackTemplate). It never returns nil and never returns Raw unless an
// override asks for it.
func (r *Registry) ForModel(model string) *Template {
	key := globKey(model)
	r.mu.RLock()
	for _, o := range r.overrides {
		if ok, _ := path.Match(o.pattern, key); ok {
			r.mu.RUnlock()
			return o.t
		}
	}
	r.mu.RUnlock()
	lower := strings.ToLower(strings.TrimSpace(model))
	for _, rule := range compiledRules {
		if rule.re.MatchString(lower) {
			return rule.t
		}
	}
	return builtins[FallbackTemplate]
}

// globKey lowercases s and swaps '/' for NUL, which path.Match treats as an
// ordinary character, so that a glob's '*' also spans the "/" of a model
// name like "aphrodite/org/model".
func globKey(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' {
			return 0
		}
		return r
	}, strings.ToLower(strings.TrimSpace(s)))
}
