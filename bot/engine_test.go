package bot_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// answered waits until the placeholder was replaced by a final answer.
func answered(n int) func([]event, map[string]string) bool {
	return func(evs []event, _ map[string]string) bool {
		c := 0
		for _, ev := range evs {
			if (ev.Kind == "edit" || ev.Kind == "send") && len(ev.Out.Buttons) > 0 && ev.Out.Buttons[0].ID == "regenerate" {
				c++
			}
		}
		return c >= n
	}
}

func TestChatAnswersAndKeepsHistory(t *testing.T) {
	r := newRig(t, bot.DefaultConfig(), 2000, hordetest.WithResponder(func(j hordetest.Job) string {
		return "Reply number " + string(rune('0'+strings.Count(j.Prompt, "Reply number")+1))
	}))
	r.engine.HandleMessage(context.Background(), r.incoming("alice", "What is the Horde?"))
	r.plat.waitFor(t, "first answer", answered(1))
	r.engine.HandleMessage(context.Background(), r.incoming("alice", "Tell me more"))
	r.plat.waitFor(t, "second answer", answered(2))
	r.svc.Close() // waits for the delivery, which stores the turn after posting it

	hist := r.store.History("test:chan-1")
	if len(hist) != 4 || hist[0].Content != "What is the Horde?" || hist[0].Name != "User alice" || hist[1].Role != "assistant" || hist[1].Content != "Reply number 1" || hist[3].Content != "Reply number 2" {
		t.Fatalf("history = %+v", hist)
	}
	subs := r.fake.RequestsTo(http.MethodPost, "/api/v2/generate/text/async")
	if len(subs) != 2 || !strings.Contains(string(subs[1].Body), "What is the Horde?") || !strings.Contains(string(subs[1].Body), "Reply number 1") {
		t.Fatalf("second prompt lacks the history: %s", subs[len(subs)-1].Body)
	}
	if !strings.Contains(string(subs[0].Body), "helpful assistant") {
		t.Errorf("default persona missing: %s", subs[0].Body)
	}
	texts := strings.Join(r.plat.texts(), "\n")
	if !strings.Contains(texts, "Reply number 1") || strings.Contains(texts, "Asking the Horde") {
		t.Errorf("placeholder not replaced: %q", texts)
	}
}

func TestLongAnswersAreSplitWithFencesIntact(t *testing.T) {
	code := "```go\n" + strings.Repeat("fmt.Println(\"hello, horde\")\n", 30) + "```\nThat prints a lot."
	r := newRig(t, bot.DefaultConfig(), 300, hordetest.WithResponder(func(hordetest.Job) string { return code }))
	r.engine.HandleMessage(context.Background(), r.incoming("bob", "print something"))
	r.plat.waitFor(t, "answer", answered(1))
	var parts []string
	for _, txt := range r.plat.texts() {
		if len([]rune(txt)) > 300 {
			t.Errorf("part over the limit: %d", len([]rune(txt)))
		}
		if strings.Contains(txt, "fmt.Println") {
			parts = append(parts, txt)
			if strings.Count(txt, "```")%2 != 0 {
				t.Errorf("unbalanced fence in part:\n%s", txt)
			}
		}
	}
	if len(parts) < 3 {
		t.Fatalf("answer not split: %d parts", len(parts))
	}
}

func TestVeryLongAnswerIsAttached(t *testing.T) {
	cfg := bot.DefaultConfig()
	cfg.AttachOver = 500
	r := newRig(t, cfg, 2000, hordetest.WithResponder(func(hordetest.Job) string { return strings.Repeat("long text ", 120) }))
	r.engine.HandleMessage(context.Background(), r.incoming("bob", "write a lot"))
	r.plat.waitFor(t, "file", func(evs []event, _ map[string]string) bool {
		for _, ev := range evs {
			if ev.Kind == "file" {
				return ev.File.Name == "answer.md" && strings.HasPrefix(string(ev.File.Data), "long text")
			}
		}
		return false
	})
}

func TestModelOutputCannotPing(t *testing.T) {
	r := newRig(t, bot.DefaultConfig(), 2000, hordetest.WithResponder(func(hordetest.Job) string { return "@everyone look @here" }))
	r.engine.HandleMessage(context.Background(), r.incoming("eve", "ping them"))
	r.plat.waitFor(t, "answer", answered(1))
	for _, txt := range r.plat.texts() {
		if strings.Contains(txt, "@everyone") || strings.Contains(txt, "@here") {
			t.Errorf("mass mention survived: %q", txt)
		}
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*bot.Config)
		in     func(bot.Incoming) bot.Incoming
		twice  int
		expect string
	}{
		{name: "denied user", cfg: func(c *bot.Config) { c.DenyUsers = []string{"mallory"} }, in: func(i bot.Incoming) bot.Incoming { i.Author.ID = "mallory"; return i }, expect: "not allowed"},
		{name: "not on allow list", cfg: func(c *bot.Config) { c.AllowUsers = []string{"alice"} }, expect: "allowed users"},
		{name: "allowed by role", cfg: func(c *bot.Config) { c.AllowRoles = []string{"test:vip"} }, in: func(i bot.Incoming) bot.Incoming { i.Author.Roles = []string{"vip"}; return i }},
		{name: "denied channel", cfg: func(c *bot.Config) { c.DenyChannels = []string{"chan-1"} }, expect: "not allowed to answer here"},
		{name: "dms off", cfg: func(c *bot.Config) { c.DMs = false }, in: func(i bot.Incoming) bot.Incoming { i.DM = true; return i }, expect: "Direct messages are turned off"},
		{name: "too fast", cfg: func(c *bot.Config) { c.UserBurst = 1 }, twice: 1, expect: "too fast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := bot.DefaultConfig()
			tt.cfg(&cfg)
			r := newRig(t, cfg, 2000)
			in := r.incoming("bob", "hello")
			if tt.in != nil {
				in = tt.in(in)
			}
			for range tt.twice {
				r.engine.HandleMessage(context.Background(), in)
			}
			r.engine.HandleMessage(context.Background(), in)
			if tt.expect == "" {
				r.plat.waitFor(t, "answer", answered(1))
				return
			}
			r.plat.waitFor(t, "refusal", func(evs []event, _ map[string]string) bool {
				for _, ev := range evs {
					if ev.Kind == "send" && strings.Contains(ev.Out.Text, tt.expect) {
						return ev.Out.Ephemeral
					}
				}
				return false
			})
			if tt.twice == 0 && len(r.fake.RequestsTo(http.MethodPost, "/api/v2/generate/text/async")) != 0 {
				t.Error("a refused message reached the Horde")
			}
		})
	}
}

func TestHordeErrorsReachThePerson(t *testing.T) {
	r := newRig(t, bot.DefaultConfig(), 2000)
	r.fake.SetMaintenance(true)
	r.engine.HandleMessage(context.Background(), r.incoming("bob", "hi"))
	r.plat.waitFor(t, "maintenance notice", func(_ []event, msgs map[string]string) bool {
		for _, m := range msgs {
			if strings.Contains(m, "maintenance") {
				return true
			}
		}
		return false
	})
}

// An answer delivered after a restart (no live state) still lands and is
// stored.
func TestDeliverFromEnvelopeAlone(t *testing.T) {
	r := newRig(t, bot.DefaultConfig(), 2000)
	conv, _ := r.store.ActiveConversation(context.Background(), "test:chan-9")
	env := bot.Envelope{Target: "chan-9", Conversation: conv.ID, User: 1, Question: "old question", Token: "gone"}
	err := r.engine.DeliverForTest(context.Background(), bridge.Delivery{JobID: "job-1", Target: env.Encode("test"), Resumed: true,
		Result: &bridge.Result{Model: "koboldcpp/X-7B", Choices: []bridge.Choice{{Text: "late answer"}}}})
	if err != nil {
		t.Fatal(err)
	}
	r.plat.waitFor(t, "late answer", func(evs []event, _ map[string]string) bool {
		return len(evs) > 0 && strings.Contains(evs[len(evs)-1].Out.Text, "late answer") && evs[len(evs)-1].Target == "chan-9"
	})
	hist := r.store.History("test:chan-9")
	if len(hist) != 2 || hist[0].Content != "old question" || hist[1].Content != "late answer" {
		t.Fatalf("history = %+v", hist)
	}
	// A second delivery of the same job (crash before the journal was
	// closed) does not post twice.
	before := len(r.plat.texts())
	_ = r.engine.DeliverForTest(context.Background(), bridge.Delivery{JobID: "job-1", Target: env.Encode("test"), Result: &bridge.Result{Choices: []bridge.Choice{{Text: "late answer"}}}})
	if after := len(r.plat.texts()); after != before {
		t.Errorf("redelivery posted again: %d -> %d messages", before, after)
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	env := bot.Envelope{Target: "discord:1:2", Placeholder: "m1", Conversation: 7, User: 3, Name: "Al", Question: "q?", Token: "tok"}
	got, err := bot.DecodeEnvelope(env.Encode("discord"))
	if err != nil || got.Platform != "discord" || got.Target != env.Target || got.Question != "q?" || got.Conversation != 7 {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range []string{"nocolon", "discord:!!!", "discord:" + "e30"} {
		if _, err := bot.DecodeEnvelope(bad); err == nil && bad != "discord:e30" {
			t.Errorf("decoded %q", bad)
		}
	}
}

// Regenerate asks the last question again and the new answer replaces the
// old one in the history.
func TestRegenerateReplacesTheAnswer(t *testing.T) {
	n := 0
	var mu sync.Mutex
	r := newRig(t, bot.DefaultConfig(), 2000, hordetest.WithResponder(func(hordetest.Job) string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("Answer %d", n)
	}))
	in := r.incoming("alice", "Pick a number")
	r.engine.HandleMessage(context.Background(), in)
	r.plat.waitFor(t, "first answer", answered(1))
	r.engine.Button(context.Background(), in, "regenerate")
	r.plat.waitFor(t, "second answer", answered(2))
	// The history is stored right after the answer is posted; closing the
	// bridge waits for deliveries in progress.
	r.svc.Close()
	hist := r.store.History("test:chan-1")
	if len(hist) != 2 || hist[0].Content != "Pick a number" || hist[1].Content != "Answer 2" {
		t.Fatalf("history = %+v", hist)
	}
	subs := r.fake.RequestsTo(http.MethodPost, "/api/v2/generate/text/async")
	if len(subs) != 2 || strings.Contains(string(subs[1].Body), "Answer 1") {
		t.Fatalf("the regenerated prompt still holds the old answer")
	}
}
