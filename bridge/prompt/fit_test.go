package prompt

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// chat returns a system prompt plus pairs user/assistant numbered from 0,
// ending with a user message: 2*pairs+2 messages.
func chat(pairs int, size int) []Message {
	msgs := []Message{{Role: RoleSystem, Content: "You are a helpful bot."}}
	for i := range pairs {
		msgs = append(msgs,
			Message{Role: RoleUser, Content: fmt.Sprintf("q%d %s", i, strings.Repeat("x", size))},
			Message{Role: RoleAssistant, Content: fmt.Sprintf("a%d %s", i, strings.Repeat("y", size))})
	}
	return append(msgs, Message{Role: RoleUser, Content: "newest question"})
}

func mustFit(tb testing.TB, tmpl *Template, msgs []Message, budget int) FitResult {
	tb.Helper()
	res, err := Fit(tmpl, msgs, budget)
	if err != nil {
		tb.Fatalf("Fit(%s, %d msgs, %d): %v", tmpl.Name(), len(msgs), budget, err)
	}
	return res
}

func TestFitEverythingFits(t *testing.T) {
	for _, n := range NewRegistry().Names() {
		tmpl := mustTemplate(t, n)
		for _, c := range conversations {
			want, _ := tmpl.Render(c.msgs)
			res := mustFit(t, tmpl, c.msgs, EstimateTokens(want))
			if res.Prompt != want || res.Dropped != 0 || res.Truncated || res.Tokens != EstimateTokens(want) || len(res.Kept) != len(c.msgs) {
				t.Errorf("%s/%s: Fit at the exact size = %+v, want the full render", n, c.name, res)
			}
		}
	}
}

func TestFitDropsOldestFirst(t *testing.T) {
	tmpl := mustTemplate(t, "chatml")
	msgs := chat(10, 100) // 22 messages
	full, _ := tmpl.Render(msgs)
	budget := EstimateTokens(full) / 2
	res := mustFit(t, tmpl, msgs, budget)

	if res.Tokens > budget || res.Tokens != EstimateTokens(res.Prompt) {
		t.Fatalf("tokens %d (prompt %d) over budget %d", res.Tokens, EstimateTokens(res.Prompt), budget)
	}
	if res.Dropped == 0 || res.Truncated {
		t.Fatalf("dropped %d, truncated %v", res.Dropped, res.Truncated)
	}
	if len(res.Kept)+res.Dropped != len(msgs) {
		t.Errorf("kept %d + dropped %d != %d", len(res.Kept), res.Dropped, len(msgs))
	}
	if res.Kept[0] != msgs[0] {
		t.Errorf("system prompt not kept first: %+v", res.Kept[0])
	}
	// The kept history is the newest part, starting at a user message.
	for i, m := range res.Kept[1:] {
		if m != msgs[1+res.Dropped+i] {
			t.Fatalf("kept[%d] = %+v, want %+v", i+1, m, msgs[1+res.Dropped+i])
		}
	}
	if res.Kept[1].Role != RoleUser {
		t.Errorf("kept history starts with %s", res.Kept[1].Role)
	}
	if !strings.Contains(res.Prompt, "newest question") || strings.Contains(res.Prompt, "q0 ") {
		t.Errorf("prompt has the wrong messages:\n%s", res.Prompt)
	}
	// Keeping one more pair would not fit.
	more := append([]Message{msgs[0]}, msgs[1+res.Dropped-2:]...)
	if p, _ := tmpl.Render(more); EstimateTokens(p) <= budget {
		t.Errorf("Fit dropped more than needed: %d tokens with one more pair, budget %d", EstimateTokens(p), budget)
	}
}

func TestFitPinsTailAfterNewestUser(t *testing.T) {
	tmpl := mustTemplate(t, "llama3")
	msgs := append(chat(5, 200), Message{Role: RoleAssistant, Content: "Prefill: "}, Message{Role: RoleSystem, Content: "Be brief."})
	res := mustFit(t, tmpl, msgs, 120)
	n := len(res.Kept)
	if res.Kept[n-3].Content != "newest question" || res.Kept[n-2].Content != "Prefill: " || res.Kept[n-1].Content != "Be brief." {
		t.Errorf("pinned tail lost: %+v", res.Kept[n-3:])
	}
	if res.Dropped != 10 {
		t.Errorf("dropped %d, want all 10 older messages", res.Dropped)
	}
}

func TestFitTruncatesNewest(t *testing.T) {
	tmpl := mustTemplate(t, "gemma")
	long := "START " + strings.Repeat("ü", 2000) + " END"
	msgs := []Message{
		{Role: RoleSystem, Content: "Be nice."},
		{Role: RoleUser, Content: "old"},
		{Role: RoleAssistant, Content: "reply"},
		{Role: RoleUser, Name: "carol", Content: long},
	}
	const budget = 100
	res := mustFit(t, tmpl, msgs, budget)
	if !res.Truncated || res.Dropped != 2 {
		t.Fatalf("truncated %v, dropped %d", res.Truncated, res.Dropped)
	}
	// The budget is used exactly: the cut is in runes, not tokens.
	if res.Tokens != budget || EstimateTokens(res.Prompt) != budget {
		t.Errorf("tokens %d, prompt %d, want %d", res.Tokens, EstimateTokens(res.Prompt), budget)
	}
	got := res.Kept[len(res.Kept)-1]
	if !strings.HasSuffix(long, got.Content) || !strings.HasSuffix(got.Content, " END") || strings.Contains(got.Content, "START") {
		t.Errorf("kept content %q is not the end of the message", got.Content)
	}
	if got.Name != "carol" || msgs[3].Content != long {
		t.Error("truncation changed the name or the caller's slice")
	}
	if !strings.Contains(res.Prompt, "Be nice.") || !strings.Contains(res.Prompt, "carol: ") {
		t.Errorf("system prompt or name lost:\n%s", res.Prompt)
	}
	if p, _ := tmpl.Render(res.Kept); p != res.Prompt {
		t.Errorf("Render(Kept) differs from the prompt")
	}
}

func TestFitBudgetTooSmall(t *testing.T) {
	tmpl := mustTemplate(t, "chatml")
	msgs := []Message{
		{Role: RoleSystem, Content: strings.Repeat("s", 400)}, // 100 tokens of system prompt
		{Role: RoleUser, Content: "hello"},
	}
	for _, budget := range []int{-1, 0, 50, 119} { // overhead: 480 runes
		if _, err := Fit(tmpl, msgs, budget); !errors.Is(err, ErrBudgetTooSmall) {
			t.Errorf("budget %d: err %v, want ErrBudgetTooSmall", budget, err)
		}
	}
	// Just above the overhead the message is cut to nothing but still fits.
	res := mustFit(t, tmpl, msgs, 121)
	if !res.Truncated || res.Tokens != 121 || res.Kept[1].Content != "ello" {
		t.Errorf("at the overhead: %+v", res)
	}
	// A system-only list is never truncated.
	if _, err := Fit(tmpl, msgs[:1], 50); !errors.Is(err, ErrBudgetTooSmall) {
		t.Errorf("system only: %v", err)
	}
	res = mustFit(t, tmpl, msgs[:1], 200)
	if res.Dropped != 0 || res.Truncated || len(res.Kept) != 1 {
		t.Errorf("system only: %+v", res)
	}
}

func TestFitNoUserMessage(t *testing.T) {
	tmpl := mustTemplate(t, "mistral-v7-tekken")
	msgs := []Message{
		{Role: RoleSystem, Content: "sys"},
		{Role: RoleAssistant, Content: "one " + strings.Repeat("a", 100)},
		{Role: RoleAssistant, Content: "two " + strings.Repeat("b", 100)},
	}
	res := mustFit(t, tmpl, msgs, 50)
	if res.Dropped != 0 || !res.Truncated || !strings.HasSuffix(res.Kept[2].Content, "bbb") || res.Kept[1] != msgs[1] {
		t.Errorf("no user message: %+v", res)
	}
}

// TestFitProperties fits random histories into random budgets with every
// template and checks the invariants, including that the result is the
// largest that fits.
func TestFitProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(20260806, 1))
	names := NewRegistry().Names()
	runs := 3000
	if testing.Short() {
		runs = 300
	}
	for run := range runs {
		tmpl := mustTemplate(t, names[rng.IntN(len(names))])
		msgs := randomHistory(rng)
		full, err := tmpl.Render(msgs)
		if err != nil {
			t.Fatal(err)
		}
		budget := rng.IntN(EstimateTokens(full) + 20)
		checkFit(t, fmt.Sprintf("run %d %s", run, tmpl.Name()), tmpl, msgs, budget)
	}
}

func checkFit(t *testing.T, label string, tmpl *Template, msgs []Message, budget int) {
	t.Helper()
	h := 0
	for h < len(msgs) && msgs[h].Role == RoleSystem {
		h++
	}
	a := -1
	for i := len(msgs) - 1; i >= h; i-- {
		if msgs[i].Role == RoleUser {
			a = i
			break
		}
	}
	res, err := Fit(tmpl, msgs, budget)
	if err != nil {
		if !errors.Is(err, ErrBudgetTooSmall) {
			t.Fatalf("%s: %v", label, err)
		}
		// Only when the pinned part with an empty newest message is too big.
		pinned := append([]Message(nil), msgs[:h]...)
		target := len(msgs) - 1
		switch {
		case a >= 0:
			pinned, target = append(pinned, msgs[a:]...), a
		default:
			pinned = append(pinned, msgs[h:]...)
		}
		if h < len(msgs) {
			pinned[len(pinned)-(len(msgs)-target)].Content = ""
		}
		p, _ := tmpl.Render(pinned)
		if EstimateTokens(p) <= budget {
			t.Fatalf("%s: ErrBudgetTooSmall with budget %d but the overhead is %d tokens", label, budget, EstimateTokens(p))
		}
		return
	}
	if res.Tokens > budget || res.Tokens != EstimateTokens(res.Prompt) {
		t.Fatalf("%s: tokens %d, prompt %d, budget %d", label, res.Tokens, EstimateTokens(res.Prompt), budget)
	}
	if p, _ := tmpl.Render(res.Kept); p != res.Prompt {
		t.Fatalf("%s: Render(Kept) != Prompt\nrender: %q\nprompt: %q", label, p, res.Prompt)
	}
	if len(res.Kept)+res.Dropped != len(msgs) {
		t.Fatalf("%s: kept %d + dropped %d != %d", label, len(res.Kept), res.Dropped, len(msgs))
	}
	cut := h + res.Dropped
	for i, m := range res.Kept {
		orig := msgs[i]
		if i >= h {
			orig = msgs[cut+i-h]
		}
		if m.Role != orig.Role || m.Name != orig.Name {
			t.Fatalf("%s: kept[%d] = %+v, want %+v", label, i, m, orig)
		}
		if m.Content != orig.Content && !(res.Truncated && strings.HasSuffix(orig.Content, m.Content)) {
			t.Fatalf("%s: kept[%d] content %q from %q", label, i, m.Content, orig.Content)
		}
	}
	if cut > h && msgs[cut].Role != RoleUser {
		t.Fatalf("%s: kept history starts with %s", label, msgs[cut].Role)
	}
	if res.Truncated {
		// Truncation only after dropping all that can go, and it uses the
		// budget to the rune.
		if a >= 0 && cut != a || a < 0 && cut != h {
			t.Fatalf("%s: truncated with cut %d, newest user %d", label, cut, a)
		}
		if EstimateTokens(res.Prompt) != budget && budget > 0 {
			t.Fatalf("%s: truncated to %d tokens, budget %d", label, res.Tokens, budget)
		}
		return
	}
	// Maximal: no older cut at a user message (or the whole history) fits.
	for c := cut - 1; c >= h; c-- {
		if c == h || msgs[c].Role == RoleUser {
			bigger := append(append([]Message(nil), msgs[:h]...), msgs[c:]...)
			if p, _ := tmpl.Render(bigger); EstimateTokens(p) <= budget {
				t.Fatalf("%s: cut %d fits (%d tokens, budget %d) but Fit cut at %d", label, c, EstimateTokens(p), budget, cut)
			}
		}
	}
}

var contentRunes = []rune("abc xyz\n.,:éü日本🙂<|>[]#")

func randomHistory(rng *rand.Rand) []Message {
	var msgs []Message
	for range rng.IntN(3) {
		msgs = append(msgs, Message{Role: RoleSystem, Content: randomText(rng, 80)})
	}
	roles := []string{RoleUser, RoleUser, RoleAssistant, RoleAssistant, RoleSystem}
	for range rng.IntN(25) {
		m := Message{Role: roles[rng.IntN(len(roles))], Content: randomText(rng, 120)}
		if rng.IntN(4) == 0 {
			m.Name = []string{"alice", " bob ", "eve\nmallory", ""}[rng.IntN(4)]
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		msgs = append(msgs, Message{Role: RoleUser, Content: randomText(rng, 50)})
	}
	return msgs
}

func randomText(rng *rand.Rand, max int) string {
	var b strings.Builder
	for range rng.IntN(max + 1) {
		b.WriteRune(contentRunes[rng.IntN(len(contentRunes))])
	}
	if rng.IntN(20) == 0 {
		b.WriteString("\xff") // invalid UTF-8 counts as one rune
	}
	return b.String()
}
