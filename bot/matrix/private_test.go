package matrix_test

import (
	"strings"
	"testing"

	"github.com/hordechat/hordechat/bot/matrix/matrixtest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// TestMeInGroupRoomStaysPrivate: !me in a shared room never shows the
// linked Horde account there. Without a known direct chat the room is told
// to ask in one; with one, the answer goes there and the room is told so;
// a direct chat someone else joined no longer counts.
func TestMeInGroupRoomStaysPrivate(t *testing.T) {
	t.Parallel()
	const key = "linked-key-0123456789abcdef"
	w := newWorld(t, hordetest.WithUsers(hordetest.User{APIKey: key, Username: "alicehorde", Kudos: 4321}))
	p := w.start()
	ctx := testCtx(t)
	room := w.hs.NewRoom(alice, mallory)
	const askInDM = "Send !me to me in a direct message"

	// No direct chat known yet.
	w.hs.Message(room, alice, text("!me"))
	first := w.waitBot(ctx, room, askInDM)
	if first.MsgType() != "m.notice" {
		t.Errorf("msgtype %v, want m.notice", first.Content["msgtype"])
	}
	noPings(t, first)

	// Alice links her key in her direct chat; then !me in the room is
	// answered there.
	dm := w.hs.NewDM(alice)
	w.hs.Message(dm, alice, text("!link "+key))
	w.waitBot(ctx, dm, "Linked")
	asked := w.hs.Message(room, alice, text("!me"))
	ans := w.waitBot(ctx, dm, "Usage:")
	if !strings.Contains(ans.Shown(), "alicehorde") || !strings.Contains(ans.Shown(), "4,321 kudos") {
		t.Errorf("the answer in the direct chat %q lacks the kudos", ans.Shown())
	}
	sent := w.waitBot(ctx, room, "sent my answer to our direct chat")
	if sent.ReplyTo() != asked {
		t.Errorf("the notice does not reply to the !me: %v", sent.Content)
	}
	noPings(t, sent)

	// Mallory joins the direct chat: it is no longer private.
	w.hs.Join(dm, mallory)
	w.hs.Message(room, alice, text("!me"))
	w.waitEvent(ctx, room, "a second ask-in-a-DM notice", func(e matrixtest.Event) bool {
		return e.Sender == w.hs.BotID() && e.ID != first.ID && strings.Contains(e.Shown(), askInDM)
	})
	p.stop()

	for _, e := range w.hs.BotMessages(room) {
		for _, private := range []string{"alicehorde", "4,321", "Usage:", "Model:"} {
			if strings.Contains(e.Shown(), private) {
				t.Errorf("the shared room shows %q: %q", private, e.Shown())
			}
		}
	}
	if n := strings.Count(joinShown(w.hs.BotMessages(dm)), "Usage:"); n != 1 {
		t.Errorf("%d !me answers in the direct chat, want 1 (none after mallory joined)", n)
	}
}

func joinShown(es []matrixtest.Event) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(e.Shown())
		b.WriteString("\n")
	}
	return b.String()
}
