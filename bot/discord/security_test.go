package discord_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/hordechat/hordechat/bot/discord/discordtest"
)

// replyFailures passes records on and reports each "command reply"
// failure's error text on a channel.
type replyFailures struct {
	slog.Handler
	errs chan string
}

func (h *replyFailures) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "command reply" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				h.errs <- a.Value.String()
			}
			return true
		})
	}
	return h.Handler.Handle(ctx, r)
}

func (h *replyFailures) WithAttrs(as []slog.Attr) slog.Handler {
	return &replyFailures{Handler: h.Handler.WithAttrs(as), errs: h.errs}
}

func (h *replyFailures) WithGroup(name string) slog.Handler {
	return &replyFailures{Handler: h.Handler.WithGroup(name), errs: h.errs}
}

// A private (ephemeral) answer whose interaction token no longer works
// (Discord answers 401 code 50027 after 15 minutes, or when this host's
// clock is off) is dropped, never posted in the channel for everyone: a
// /token answer holds a new /v1 token.
func TestPrivateReplyNeverFallsBackToTheChannel(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	failures := &replyFailures{Handler: w.log.Handler(), errs: make(chan string, 4)}
	w.log = slog.New(failures)
	ctx := testCtx(t)
	w.start()
	w.fake.Inject(discordtest.Fault{Path: "/webhooks/", Count: -1, Status: 401, Body: `{"message": "Invalid Webhook Token", "code": 50027}`})
	leaked := make(chan string, 1)
	go func() {
		m, err := w.fake.WaitMessage(ctx, func(m discordtest.Message) bool {
			return m.ChannelID == w.general.ID && m.Author != nil && m.Author.ID == w.bot.ID && !m.Ephemeral
		})
		if err == nil {
			leaked <- m.Content
		}
	}()
	w.fake.SlashCommand(discordtest.SlashCommand{Name: "token", ChannelID: w.general.ID, User: w.alice})
	select {
	case m := <-leaked:
		t.Fatalf("the private /token answer went to the channel: %q", m)
	case err := <-failures.errs:
		if !strings.Contains(err, "private answer was not posted") {
			t.Errorf("reply failed with %q, want the private-answer refusal", err)
		}
	case <-ctx.Done():
		t.Fatal("the /token reply was never attempted")
	}
	for _, m := range w.fake.Messages(w.general.ID) {
		if m.Author != nil && m.Author.ID == w.bot.ID && !m.Ephemeral {
			t.Errorf("a private answer went to the channel: %q", m.Content)
		}
	}
}
