package prompt

import (
	"fmt"
	"math"
)

// FitResult is a prompt fitted to a token budget.
type FitResult struct {
	Prompt string
	// Kept are the messages the prompt was rendered from: the leading
	// system messages plus the newest history, with the newest user
	// message's content shortened if Truncated.
	Kept []Message
	// Dropped counts the history messages left out, oldest first.
	Dropped int
	// Tokens is EstimateTokens(Prompt); it never exceeds the budget.
	Tokens int
	// Truncated reports that even the system prompt plus the newest user
	// message did not fit, so that message lost the start of its content.
	Truncated bool
}

// Fit renders the newest part of msgs that fits budgetTokens, as counted by
// EstimateTokens.
//
// The leading system messages and everything from the newest user message on
// always stay. Older history is dropped oldest first, and the kept history
// always begins with a user message (or is the whole history), so no reply
// is left without its question. If even the pinned part does not fit, the
// newest user message (the last message when there is no user message) keeps
// only the end of its content and Truncated is set. Fit fails with
// ErrBudgetTooSmall only when the budget cannot hold the pinned part with
// that content empty: the markers, the system prompt and any messages after
// the newest user message.
//
// Nothing is rendered per candidate cut: messages are measured once each,
// newest first and only until the budget runs out, and the chosen prompt is
// written with a single allocation, so a long history costs little more than
// the part that fits.
func Fit(t *Template, msgs []Message, budgetTokens int) (FitResult, error) {
	if t == nil {
		return FitResult{}, ErrNilTemplate
	}
	if err := validate(msgs); err != nil {
		return FitResult{}, err
	}
	limit := runeLimit(budgetTokens)
	l := newLayout(t, msgs)
	n := len(msgs)
	base := l.fixedSize()

	if l.h == n { // system messages only: nothing to drop or truncate
		if base.runes > limit {
			return FitResult{}, tooSmall(budgetTokens, base.runes)
		}
		return l.result(base.bytes, base.runes, false), nil
	}

	// a is the newest user message: [a, n) is pinned, cuts go in [h, a].
	// With no user message the whole history is pinned and its last message
	// is the one to truncate.
	a, target := -1, n-1
	for i := n - 1; i >= l.h; i-- {
		if msgs[i].Role == RoleUser {
			a, target = i, i
			break
		}
	}
	if a < 0 {
		a = l.h
	}

	// acc measures messages after the candidate cut c, rendered as not first.
	var acc size
	for i := n - 1; i > a; i-- {
		w := l.wrap(i, false)
		acc = acc.add(w.size()).add(l.bodySize(i))
	}
	best, bestSize := -1, size{}
	var pinned size // the whole prompt with c == a
	for c := a; c >= l.h; c-- {
		body := l.bodySize(c)
		if c == a || c == l.h || msgs[c].Role == RoleUser {
			w := l.wrap(c, true)
			total := base.add(acc).add(w.size()).add(body)
			if c == a {
				pinned = total
			}
			if total.runes <= limit {
				best, bestSize = c, total
			}
		}
		w := l.wrap(c, false)
		acc = acc.add(w.size()).add(body)
		// Every earlier cut costs at least base + acc.
		if base.runes+acc.runes > limit {
			break
		}
	}
	if best >= 0 {
		l.cut = best
		return l.result(bestSize.bytes, bestSize.runes, false), nil
	}

	// Nothing fits whole: keep [a, n) and cut the target's content from its
	// start, keeping its end, by as many runes as the prompt is over.
	l.cut = a
	content := msgs[target].Content
	cs := measure(content).n
	over := pinned.runes - limit
	if over > cs.runes {
		return FitResult{}, tooSmall(budgetTokens, pinned.runes-cs.runes)
	}
	// Skip over runes; range steps like utf8.RuneCountInString counts
	// (an invalid byte is one rune).
	off, skipped := len(content), 0
	for i := range content {
		if skipped == over {
			off = i
			break
		}
		skipped++
	}
	l.trimIdx, l.trimmed = target, content[off:]
	return l.result(pinned.bytes-off, pinned.runes-over, true), nil
}

func runeLimit(budgetTokens int) int {
	if budgetTokens < 0 {
		return -1
	}
	if budgetTokens > math.MaxInt/4 {
		return math.MaxInt
	}
	return budgetTokens * 4
}

func tooSmall(budget, overheadRunes int) error {
	return fmt.Errorf("%w: budget %d tokens, overhead (markers, system prompt, pinned messages) %d tokens",
		ErrBudgetTooSmall, budget, tokensOf(overheadRunes))
}

// result writes the prompt of l and the messages it was rendered from.
func (l *layout) result(bytes, runes int, truncated bool) FitResult {
	kept := make([]Message, 0, l.h+len(l.msgs)-l.cut)
	kept = append(kept, l.msgs[:l.h]...)
	kept = append(kept, l.msgs[l.cut:]...)
	if l.trimIdx >= 0 {
		kept[l.h+l.trimIdx-l.cut].Content = l.trimmed
	}
	return FitResult{
		Prompt:    l.build(bytes),
		Kept:      kept,
		Dropped:   l.cut - l.h,
		Tokens:    tokensOf(runes),
		Truncated: truncated,
	}
}
