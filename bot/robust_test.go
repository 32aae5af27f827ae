package bot_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bot/bottest"
	"github.com/hordechat/hordechat/bridge/bridgetest"
)

// A panic while answering one message is logged, the person is told, and
// the conversation (and the process) goes on answering.
func TestPanicInATurnIsContained(t *testing.T) {
	logs := &bottest.LogBuffer{}
	r := newLoggedRig(t, bot.DefaultConfig(), 2000, slog.New(slog.NewTextHandler(logs, nil)))
	r.plat.mu.Lock()
	r.plat.panicTarget = "chan-1"
	r.plat.mu.Unlock()
	r.engine.HandleMessage(context.Background(), r.incoming("bob", "first"))
	r.plat.waitFor(t, "an error notice", func(evs []event, _ map[string]string) bool {
		for _, ev := range evs {
			if ev.Kind == "send" && strings.Contains(ev.Out.Text, "Something went wrong on my side") {
				return true
			}
		}
		return false
	})
	if !strings.Contains(logs.String(), "internal error while answering") || !strings.Contains(logs.String(), "fake platform: send to chan-1") {
		t.Errorf("the panic was not logged:\n%s", logs.String())
	}
	r.engine.HandleMessage(context.Background(), r.incoming("bob", "second"))
	r.plat.waitFor(t, "the next answer", answered(1))
}

// A conversation holds at most 64 waiting questions; more are refused with
// a clear message instead of blocking the engine, and everything accepted
// is answered once the Horde has workers again.
func TestFullConversationQueueRefusesClearly(t *testing.T) {
	cfg := bot.DefaultConfig()
	r := newRig(t, cfg, 2000)
	bridgetest.SetWorkersOnline(t, r.fake, false)
	const senders = 70
	ask := func(i int) {
		r.engine.HandleMessage(context.Background(), r.incoming(fmt.Sprintf("user-%02d", i), fmt.Sprintf("question %02d", i)))
	}
	// The first turn runs: it holds the queue while its job waits.
	ask(0)
	r.plat.waitFor(t, "the first turn running", func(evs []event, _ map[string]string) bool {
		return len(evs) > 0 && strings.Contains(evs[0].Out.Text, "Asking the Horde")
	})
	// 64 wait behind it, and the rest are refused.
	for i := 1; i < senders; i++ {
		ask(i)
	}
	const refusedWant = senders - 1 - 64
	r.plat.waitFor(t, "the refusals", func(evs []event, _ map[string]string) bool {
		n := 0
		for _, ev := range evs {
			if ev.Kind == "send" && strings.Contains(ev.Out.Text, "questions are already waiting in this conversation") {
				if !ev.Out.Ephemeral {
					t.Errorf("refusal not private: %+v", ev.Out)
				}
				n++
			}
		}
		return n == refusedWant
	})
	bridgetest.SetWorkersOnline(t, r.fake, true)
	r.plat.waitFor(t, "every accepted question answered", answered(senders-refusedWant))
	if got := len(r.fake.RequestsTo(http.MethodPost, "/api/v2/generate/text/async")); got != senders-refusedWant {
		t.Errorf("%d submits, want %d", got, senders-refusedWant)
	}
}
