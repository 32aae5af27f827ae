package openai

import (
	"regexp"
	"strings"

	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/prompt"
)

// policy is the operator's model allow/deny lists and prompt block list.
type policy struct {
	allow, deny []*regexp.Regexp
	block       []*regexp.Regexp
}

func newPolicy(cfg Config) (*policy, error) {
	p := &policy{}
	for _, g := range cfg.AllowModels {
		p.allow = append(p.allow, globRegexp(g))
	}
	for _, g := range cfg.DenyModels {
		p.deny = append(p.deny, globRegexp(g))
	}
	for _, b := range cfg.BlockPrompts {
		re, err := regexp.Compile(b)
		if err != nil {
			return nil, err // Validate caught it already
		}
		p.block = append(p.block, re)
	}
	return p, nil
}

// globRegexp compiles a case-insensitive glob in which * matches any run
// of characters, "/" included (path.Match would stop at slashes, and model
// names are full of them), and ? matches one.
func globRegexp(glob string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("(?is)^")
	for _, r := range strings.TrimSpace(glob) {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// restricts reports whether any model list is configured.
func (p *policy) restricts() bool { return len(p.allow) > 0 || len(p.deny) > 0 }

// modelAllowed reports whether the operator serves the Horde model name.
func (p *policy) modelAllowed(name string) bool {
	for _, re := range p.deny {
		if re.MatchString(name) {
			return false
		}
	}
	if len(p.allow) == 0 {
		return true
	}
	for _, re := range p.allow {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// blocked reports whether any message or the prompt matches a block rule.
func (p *policy) blocked(msgs []prompt.Message, raw string) bool {
	if len(p.block) == 0 {
		return false
	}
	for _, re := range p.block {
		if raw != "" && re.MatchString(raw) {
			return true
		}
		for _, m := range msgs {
			if re.MatchString(m.Content) {
				return true
			}
		}
	}
	return false
}

func blockedError() *apiError {
	return &apiError{Status: 400, Type: "invalid_request_error", Code: "content_blocked",
		Message: "This request was blocked by a content rule of this server's operator."}
}

func modelNotServed(name string) *apiError {
	return &apiError{Status: 404, Type: "invalid_request_error", Param: "model", Code: string(bridge.CodeUnknownModel),
		Message: "The model " + quote(name) + " is not offered by this server. List the models it offers with GET /v1/models."}
}

func quote(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return "\"" + strings.ReplaceAll(s, "\"", "'") + "\""
}

// resolveModels turns the requested model field into Horde model names
// this server offers. It returns nil names when the bridge should pick
// its default (no model asked and no lists to honour).
func (s *Server) resolveModels(field string) (names []string, display string, e *apiError) {
	reg := s.bridge.Models()
	var asked []string
	for _, part := range strings.Split(field, ",") {
		if part = strings.TrimSpace(part); part != "" && !strings.EqualFold(part, bridge.DefaultModel) {
			asked = append(asked, part)
		}
	}
	if len(asked) == 0 {
		if !s.policy.restricts() {
			// The bridge applies bridge.default_model; show our best guess.
			mi, err := reg.Default(s.defaultModel)
			if err != nil {
				return nil, "", fromBridge(err)
			}
			return nil, mi.Name, nil
		}
		name, e := s.defaultAllowed()
		if e != nil {
			return nil, "", e
		}
		return []string{name}, name, nil
	}
	seen := map[string]bool{}
	for _, a := range asked {
		mi, err := reg.Resolve(a)
		if err != nil {
			return nil, "", fromBridge(err)
		}
		if !s.policy.modelAllowed(mi.Name) {
			return nil, "", modelNotServed(a)
		}
		if !seen[mi.Name] {
			seen[mi.Name] = true
			names = append(names, mi.Name)
		}
	}
	return names, names[0], nil
}

// defaultAllowed picks the default among the models the lists allow: the
// configured default when allowed and served, else the one with workers
// and the shortest queue.
func (s *Server) defaultAllowed() (string, *apiError) {
	reg := s.bridge.Models()
	if s.defaultModel != "" {
		if mi, err := reg.Resolve(s.defaultModel); err == nil && mi.Workers > 0 && s.policy.modelAllowed(mi.Name) {
			return mi.Name, nil
		}
	}
	snap := reg.Snapshot()
	var best *bridge.ModelInfo
	for i := range snap.Models {
		mi := &snap.Models[i]
		if mi.Workers == 0 || !s.policy.modelAllowed(mi.Name) {
			continue
		}
		if best == nil || mi.ETA < best.ETA || (mi.ETA == best.ETA && mi.Threads > best.Threads) {
			best = mi
		}
	}
	if best == nil {
		if _, err := reg.Default(""); err != nil {
			return "", fromBridge(err) // not loaded yet, or nothing online
		}
		return "", &apiError{Status: 503, Type: "server_error", Code: string(bridge.CodeNoWorkers), Param: "model",
			Message: "None of the models this server offers has a worker online right now. Try again later."}
	}
	return best.Name, nil
}
