package bridge

import (
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/hordechat/hordechat/bridge/prompt"
	"github.com/hordechat/hordechat/hordeapi"
)

// Limits on what a caller may ask, beyond the Horde's own ranges.
const (
	maxUserStops     = 16
	maxUserStopChars = 1000
)

// prepared is a Request turned into a Horde request, with what is needed
// to turn the answer back into a Result. It is journaled as JSON, so it
// holds no key.
type prepared struct {
	Horde        hordeapi.TextRequest `json:"horde"`
	Template     string               `json:"template"`
	UserStops    []string             `json:"user_stops,omitempty"`
	PromptTokens int                  `json:"prompt_tokens"`
	Dropped      int                  `json:"dropped,omitempty"`
	Truncated    bool                 `json:"truncated,omitempty"`
	MaxTokens    int                  `json:"max_tokens"`
	Limited      bool                 `json:"limited,omitempty"`
	KudosLimited bool                 `json:"kudos_limited,omitempty"`
}

func invalid(param, format string, args ...any) *Error {
	e := newError(CodeInvalidRequest, http.StatusBadRequest, nil, format, args...)
	e.Param = param
	return e
}

// prepare resolves the models, fits the request to the workers' capacity,
// the operator's caps and the upfront-kudos rule, and renders the prompt.
// kudos is the account's balance, or a negative number when unknown.
func (s *Service) prepare(req Request, kudos float64) (*prepared, error) {
	if err := validateParams(req.Params, s.cfg.MaxN); err != nil {
		return nil, err
	}
	if len(req.Messages) == 0 && strings.TrimSpace(req.Prompt) == "" {
		return nil, invalid("messages", "The request has no messages and no prompt.")
	}
	models, err := s.resolveModels(req.Models)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(models))
	var bestCtx, bestLen, workers int
	for i, m := range models {
		names[i] = m.Name
		bestCtx, bestLen, workers = max(bestCtx, m.MaxContextLength), max(bestLen, m.MaxLength), workers+m.Workers
	}
	if workers == 0 {
		e := newError(CodeNoWorkers, http.StatusServiceUnavailable, nil, "No worker serves %s right now.", strings.Join(names, " or "))
		if others := s.otherModels(names); others != "" {
			e.Message += " Switch to one of the models that have workers: " + others + "."
		} else {
			e.Message += " No text model has workers right now; try again later."
		}
		e.Param = "model"
		return nil, e
	}

	p := &prepared{}
	n := max(req.Params.N, 1)
	asked := s.cfg.DefaultMaxTokens
	if req.Params.MaxTokens != nil {
		asked = *req.Params.MaxTokens
	}
	ml := min(asked, s.cfg.MaxTokens)
	if bestLen > 0 {
		ml = min(ml, bestLen)
	}
	ctx := s.cfg.MaxContext
	if bestCtx > 0 {
		ctx = min(ctx, bestCtx)
	}
	ctx = clamp(ctx, hordeapi.MinMaxContextLength, hordeapi.MaxMaxContextLength)
	// At least half the context stays for the prompt.
	ml = clamp(min(ml, ctx/2), hordeapi.MinMaxLength, hordeapi.MaxMaxLength)

	snap := s.models.Snapshot()
	threshold := upfrontThreshold(snap.ActiveTextThreads, snap.QueuedTextRequests)
	allowDowngrade := false
	if ml > threshold {
		size := largestParams(names)
		switch {
		case kudos < 0 || size == 0:
			// Unknown balance or model size: let the Horde cut max_length
			// to its threshold rather than refuse with KudosUpfront.
			allowDowngrade = true
		case kudos < upfrontCost(ml, size, n):
			ml, p.KudosLimited = threshold, true
		}
	}
	p.MaxTokens, p.Limited = ml, ml < asked || p.KudosLimited

	tpl := prompt.Raw
	msgs := req.Messages
	if len(msgs) == 0 {
		msgs = []prompt.Message{{Role: prompt.RoleUser, Content: req.Prompt}}
	} else {
		tpl = s.templates.ForModel(names[0])
	}
	budget := ctx - ml - max(16, ctx/32) // the chars/4 estimate is rough
	fit, err := prompt.Fit(tpl, msgs, budget)
	if err != nil {
		return nil, invalid("messages", "The system prompt alone is too long for %s (about %d tokens fit); shorten it.", names[0], budget)
	}
	p.Template, p.PromptTokens, p.Dropped, p.Truncated = tpl.Name(), fit.Tokens, fit.Dropped, fit.Truncated
	p.UserStops = dedupe(req.Params.Stop)
	stops := dedupe(append(tpl.StopSequences(), p.UserStops...))

	hp := &hordeapi.TextParams{
		N:                hordeapi.Ptr(n),
		MaxLength:        hordeapi.Ptr(ml),
		MaxContextLength: hordeapi.Ptr(ctx),
		Temperature:      req.Params.Temperature,
		TopP:             clampedTopP(req.Params.TopP),
		TopK:             req.Params.TopK,
		MinP:             req.Params.MinP,
		TopA:             req.Params.TopA,
		Typical:          req.Params.Typical,
		TFS:              req.Params.TFS,
		RepPen:           repPen(req.Params),
		RepPenRange:      req.Params.RepPenRange,
		RepPenSlope:      req.Params.RepPenSlope,
		SmoothingFactor:  req.Params.SmoothingFactor,
		DynatempRange:    req.Params.DynatempRange,
		DynatempExponent: req.Params.DynatempExponent,
		SamplerSeed:      req.Params.Seed,
		StopSequence:     stops,
	}
	p.Horde = hordeapi.TextRequest{
		Prompt:            fit.Prompt,
		Params:            hp,
		Models:            names,
		TrustedWorkers:    s.cfg.TrustedWorkers || req.Params.TrustedWorkers,
		ValidatedBackends: hordeapi.Ptr(s.cfg.ValidatedBackends),
		SlowWorkers:       hordeapi.Ptr(true), // false always costs upfront kudos
		Workers:           req.Params.Workers,
		WorkerBlacklist:   req.Params.WorkerBlacklist && len(req.Params.Workers) > 0,
		AllowDowngrade:    allowDowngrade,
	}
	return p, nil
}

// resolveModels turns the requested names into live models.
func (s *Service) resolveModels(requested []string) ([]ModelInfo, error) {
	var out []ModelInfo
	seen := map[string]bool{}
	for _, name := range requested {
		for _, part := range strings.Split(name, ",") { // the official proxy's comma lists
			part = strings.TrimSpace(part)
			if part == "" || strings.EqualFold(part, DefaultModel) {
				continue
			}
			mi, err := s.models.Resolve(part)
			if err != nil {
				return nil, err
			}
			if !seen[mi.Name] {
				seen[mi.Name] = true
				out = append(out, mi)
			}
		}
	}
	if len(out) == 0 {
		mi, err := s.models.Default(s.cfg.DefaultModel)
		if err != nil {
			return nil, err
		}
		out = append(out, mi)
	}
	return out, nil
}

func validateParams(p Params, maxN int) error {
	type rng struct {
		name     string
		v        *float64
		min, max float64
	}
	for _, r := range []rng{
		{"temperature", p.Temperature, 0, 5},
		{"top_p", p.TopP, 0, 1},
		{"min_p", p.MinP, 0, 1},
		{"top_a", p.TopA, 0, 1},
		{"typical", p.Typical, 0, 1},
		{"tfs", p.TFS, 0, 1},
		{"frequency_penalty", p.FrequencyPenalty, -2, 2},
		{"presence_penalty", p.PresencePenalty, -2, 2},
		{"rep_pen", p.RepPen, 1, 3},
		{"rep_pen_slope", p.RepPenSlope, 0, 10},
		{"smoothing_factor", p.SmoothingFactor, 0, 10},
		{"dynatemp_range", p.DynatempRange, 0, 5},
		{"dynatemp_exponent", p.DynatempExponent, 0, 5},
	} {
		if r.v != nil && (math.IsNaN(*r.v) || *r.v < r.min || *r.v > r.max) {
			return invalid(r.name, "%s must be between %g and %g (got %g).", r.name, r.min, r.max, *r.v)
		}
	}
	if p.TopK != nil && (*p.TopK < 0 || *p.TopK > 200) {
		return invalid("top_k", "top_k must be between 0 and 200 (got %d).", *p.TopK)
	}
	if p.RepPenRange != nil && (*p.RepPenRange < 0 || *p.RepPenRange > 4096) {
		return invalid("rep_pen_range", "rep_pen_range must be between 0 and 4096 (got %d).", *p.RepPenRange)
	}
	if p.MaxTokens != nil && *p.MaxTokens < 1 {
		return invalid("max_tokens", "max_tokens must be at least 1 (got %d).", *p.MaxTokens)
	}
	if p.N < 0 || p.N > maxN {
		return invalid("n", "n must be between 1 and %d (got %d).", maxN, p.N)
	}
	if len(p.Stop) > maxUserStops {
		return invalid("stop", "At most %d stop sequences are allowed (got %d).", maxUserStops, len(p.Stop))
	}
	total := 0
	for _, s := range p.Stop {
		if s == "" {
			return invalid("stop", "Stop sequences must not be empty.")
		}
		total += len(s)
	}
	if total > maxUserStopChars {
		return invalid("stop", "Stop sequences may hold at most %d characters in all (got %d).", maxUserStopChars, total)
	}
	if len(p.Workers) > 5 {
		return invalid("workers", "At most 5 workers can be named (the Horde ignores the rest).")
	}
	return nil
}

// repPen maps OpenAI's penalties (-2..2) onto the Horde's repetition
// penalty (1..3): 1 + the larger positive penalty / 2. The Horde cannot
// encourage repetition, so negative values mean no penalty.
func repPen(p Params) *float64 {
	if p.RepPen != nil {
		return p.RepPen
	}
	pen := 0.0
	for _, v := range []*float64{p.FrequencyPenalty, p.PresencePenalty} {
		if v != nil && *v > pen {
			pen = *v
		}
	}
	if pen == 0 {
		return nil
	}
	return hordeapi.Ptr(1 + pen/2)
}

// clampedTopP lifts OpenAI's top_p 0 to the Horde's minimum.
func clampedTopP(v *float64) *float64 {
	if v == nil || *v >= 0.001 {
		return v
	}
	return hordeapi.Ptr(0.001)
}

// upfrontThreshold is the Horde's max_length above which kudos are needed
// upfront (horde-api.md §3.3).
func upfrontThreshold(activeThreads, queuedRequests int) int {
	return clamp(512+5*activeThreads-int(math.Round(0.9*float64(queuedRequests))), 256, 512)
}

// upfrontCost is the kudos the Horde wants upfront: round(ml×B/21, 2)×n.
func upfrontCost(maxLength int, paramsB float64, n int) float64 {
	return math.Round(float64(maxLength)*paramsB/21*100) / 100 * float64(n)
}

var paramSize = regexp.MustCompile(`(?i)(?:(\d+)x)?(\d+(?:\.\d+)?)b(?:[^a-z]|$)`)

// largestParams estimates the largest model size (billions of parameters)
// among names from their names ("13B", "8x7B"); 0 when none says.
func largestParams(names []string) float64 {
	best := 0.0
	for _, n := range names {
		for _, m := range paramSize.FindAllStringSubmatch(n, -1) {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				continue
			}
			if m[1] != "" {
				experts, _ := strconv.ParseFloat(m[1], 64)
				v *= experts
			}
			best = max(best, v)
		}
	}
	return best
}

func clamp(v, lo, hi int) int { return min(max(v, lo), hi) }

func dedupe(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// String names the prepared request for logs, without the prompt.
func (p *prepared) String() string {
	return fmt.Sprintf("models=%v template=%s max_tokens=%d prompt_tokens=%d dropped=%d", p.Horde.Models, p.Template, p.MaxTokens, p.PromptTokens, p.Dropped)
}
