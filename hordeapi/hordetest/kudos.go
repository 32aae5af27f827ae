package hordetest

import (
	"math"
	"regexp"
	"strconv"
)

// The real Horde reads parameter counts from its text model reference. The
// fake has no reference, so it parses the count from the model name
// ("Fimbulvetr-11B-v2" is 11, "Mixtral-8x7B" is 56) and falls back to
// unknownModelB, the size the Horde assumes for a model it does not know.
const (
	unknownModelB = 2.7
	noModelB      = 13 // the estimate's assumption when no model is named
)

var sizeRE = regexp.MustCompile(`(?i)(?:^|[^a-z0-9.])(?:(\d+)x)?(\d+(?:\.\d+)?)b(?:$|[^a-z0-9])`)

// modelSize parses the parameter count, in billions, from a model name. The
// largest figure wins when a name carries several.
func modelSize(name string) (float64, bool) {
	best, found := 0.0, false
	for _, m := range sizeRE.FindAllStringSubmatch(name, -1) {
		b, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		if m[1] != "" {
			experts, _ := strconv.ParseFloat(m[1], 64)
			b *= experts
		}
		if b > best {
			best, found = b, true
		}
	}
	return best, found
}

func modelSizeOr(name string, fallback float64) float64 {
	if b, ok := modelSize(name); ok {
		return b
	}
	return fallback
}

// contextFactor is 1.2 + 2.2^log2(ctx/1024), clamped to 0.1–30 (§3.3).
func contextFactor(ctx int) float64 {
	f := 1.2 + math.Pow(2.2, math.Log2(float64(ctx)/1024))
	return math.Min(30, math.Max(0.1, f))
}

// tokenCost is the kudos of generating tokens with a model of b billion
// parameters and the given context, before the horde tax.
func tokenCost(tokens int, b float64, ctx int) float64 {
	return float64(tokens) * b * math.Pow(math.Max(b, 13)/13, 0.2) * contextFactor(ctx) / 100
}

// dryRunKudos is the dry_run estimate: max_length tokens per job with the
// first requested model (13B without models), plus 1 per job and 1 per
// request of horde tax.
func dryRunKudos(r *request) float64 {
	b := float64(noModelB)
	if len(r.models) > 0 {
		b = modelSizeOr(r.models[0], unknownModelB)
	}
	return float64(r.n)*(tokenCost(r.maxLength, b, r.maxCtx)+1) + 1
}

// jobKudos is the charge of one finished job: the tokens actually generated
// (characters/4, at least 20) with the model that served it, plus 1 tax.
func jobKudos(text, model string, ctx int) float64 {
	tokens := max(tokenCount(text), 20)
	return round2(tokenCost(tokens, modelSizeOr(model, unknownModelB), ctx) + 1)
}

// upfrontThreshold is T = clamp(512 + 5·threads − round(0.9·queued), 256, 512).
func upfrontThreshold(activeThreads, queuedRequests int) int {
	t := 512 + 5*activeThreads - int(pyRound(0.9*float64(queuedRequests)))
	return min(512, max(256, t))
}

// upfrontRequired is round(max_length × B / 21, 2) × n with B the largest
// model size requested, or 20 × n without models. The string is formatted
// like Python prints it in the KudosUpfront message (an int without models,
// a float otherwise).
func upfrontRequired(maxLength, n int, models []string) (float64, string) {
	if len(models) == 0 {
		v := 20 * n
		return float64(v), strconv.Itoa(v)
	}
	b := 0.0
	for _, m := range models {
		b = math.Max(b, modelSizeOr(m, unknownModelB))
	}
	v := round2(float64(maxLength)*b/21) * float64(n)
	return v, pyFloat(v)
}
