package bot_test

import (
	"context"
	"testing"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bridge"
)

// A process killed after it stored a turn but before the bridge closed the
// job delivers the job again on the next start: the turn is stored once.
func TestRedeliveryAfterACrashStoresTheTurnOnce(t *testing.T) {
	r := newRig(t, bot.DefaultConfig(), 2000)
	ctx := context.Background()
	conv, _ := r.store.ActiveConversation(ctx, "test:chan-7")
	env := bot.Envelope{Target: "chan-7", Conversation: conv.ID, User: 1, Question: "asked before the crash", Token: "gone"}
	d := bridge.Delivery{JobID: "job-7", Target: env.Encode("test"), Resumed: true,
		Result: &bridge.Result{HordeID: "horde-7", Model: "koboldcpp/X-7B", Choices: []bridge.Choice{{Text: "the answer"}}}}
	for range 2 {
		if err := r.engine.DeliverForTest(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	hist := r.store.History("test:chan-7")
	if len(hist) != 2 || hist[0].Content != "asked before the crash" || hist[1].Content != "the answer" {
		t.Fatalf("history = %+v, want the turn once", hist)
	}

	// Another job's answer with the same text is a turn of its own.
	d.JobID, d.Result.HordeID = "job-8", "horde-8"
	if err := r.engine.DeliverForTest(ctx, d); err != nil {
		t.Fatal(err)
	}
	if hist := r.store.History("test:chan-7"); len(hist) != 4 {
		t.Fatalf("history has %d messages, want 4", len(hist))
	}
}
