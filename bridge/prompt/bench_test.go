package prompt

import (
	"fmt"
	"strings"
	"testing"
)

// history1000 is a system prompt plus 1,000 alternating messages of about
// 200 characters.
func history1000() []Message {
	msgs := []Message{{Role: RoleSystem, Content: "You are HordeBot, a friendly assistant in a Discord server. Keep answers short."}}
	body := strings.Repeat("lorem ipsum dolor sit amet, ", 7) // 196 chars
	for i := range 1000 {
		m := Message{Role: RoleUser, Name: "user" + fmt.Sprint(i%7), Content: fmt.Sprintf("%04d %s", i, body)}
		if i%2 == 1 {
			m = Message{Role: RoleAssistant, Content: fmt.Sprintf("%04d %s", i, body)}
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// BenchmarkFit1000 renders and fits a 1,000-message history into a
// 4096-token budget.
func BenchmarkFit1000(b *testing.B) {
	msgs := history1000()
	for _, name := range []string{"chatml", "gemma"} {
		tmpl := mustTemplate(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var res FitResult
			for b.Loop() {
				var err error
				res, err = Fit(tmpl, msgs, 4096)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(res.Kept)), "kept")
		})
	}
}

// BenchmarkRender1000 renders the whole 1,000-message history, for scale.
func BenchmarkRender1000(b *testing.B) {
	msgs := history1000()
	tmpl := mustTemplate(b, "chatml")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tmpl.Render(msgs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCleanOutput(b *testing.B) {
	tmpl := mustTemplate(b, "llama3")
	text := strings.Repeat("A long answer. ", 60) + "<|eot_id|>"
	b.ReportAllocs()
	for b.Loop() {
		tmpl.CleanOutput(text, []string{"\nuser0:"})
	}
}
