package matrix_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hordechat/hordechat/bot/matrix/matrixtest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

func TestInviteJoinsAllowedAndDeclinesOthers(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.start()
	ctx := testCtx(t)

	good := w.hs.Invite(alice)
	bad := w.hs.Invite("@eve:evil.test")
	bot := w.hs.BotID()
	w.wait(ctx, "a join and a decline", func() bool {
		_, declined := w.hs.LeaveReason(bad, bot)
		return len(w.hs.Joins()) == 1 && declined
	})
	if joins := w.hs.Joins(); joins[0] != good || w.hs.Membership(good, bot) != "join" {
		t.Errorf("joined %v, want %s", joins, good)
	}
	if _, left := w.hs.LeaveReason(good, bot); left {
		t.Error("left the allowed room")
	}
	if r, _ := w.hs.LeaveReason(bad, bot); !strings.Contains(r, "hs.test") {
		t.Errorf("decline reason %q does not say who may invite", r)
	}
	if m := w.hs.Membership(bad, bot); m != "leave" {
		t.Errorf("membership of the refused room is %q, want leave", m)
	}
}

func TestDirectMessagesAreAConversation(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(replyNumber))
	p := w.start()
	ctx := testCtx(t)
	dm := w.hs.NewDM(alice)

	w.hs.Message(dm, alice, text("hello there"))
	placeholder := w.waitBot(ctx, dm, "Asking the Horde")
	ans := w.waitBot(ctx, dm, "Reply number 1")
	if placeholder.Content["msgtype"] != "m.notice" || placeholder.Content["m.relates_to"] != nil {
		t.Errorf("placeholder = %v, want a plain notice in the DM", placeholder.Content)
	}
	rel, _ := ans.Content["m.relates_to"].(map[string]any)
	nc, _ := ans.Content["m.new_content"].(map[string]any)
	if rel["rel_type"] != "m.replace" || rel["event_id"] != placeholder.ID || nc["msgtype"] != "m.notice" {
		t.Errorf("answer = %v, want an m.replace of the placeholder %s as a notice", ans.Content, placeholder.ID)
	}
	if !strings.HasPrefix(ans.Content["body"].(string), "* ") {
		t.Errorf("edit fallback body = %q, want it to start with \"* \"", ans.Content["body"])
	}
	noPings(t, placeholder)
	noPings(t, ans)
	if m, ok := nc["m.mentions"].(map[string]any); !ok || len(m) != 0 {
		t.Errorf("m.new_content m.mentions = %v, want {}", nc["m.mentions"])
	}

	w.hs.Message(dm, alice, text("and again"))
	w.waitBot(ctx, dm, "Reply number 2")
	p.stop() // the turn is stored after it is shown
	if hist := w.store.History("matrix:" + dm); len(hist) != 4 {
		t.Errorf("history of matrix:%s has %d messages, want 4", dm, len(hist))
	}
}

func TestMentionInGroupRoomStartsThread(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(replyNumber))
	p := w.start()
	ctx := testCtx(t)
	room := w.hs.NewRoom(alice, mallory)

	w.hs.Message(room, mallory, text("just chatting, not for the bot"))
	q := w.hs.Message(room, alice, w.mentionBot("what is a horde?"))
	placeholder := w.waitBot(ctx, room, "Asking the Horde")
	rel, _ := placeholder.Content["m.relates_to"].(map[string]any)
	irt, _ := rel["m.in_reply_to"].(map[string]any)
	if rel["rel_type"] != "m.thread" || rel["event_id"] != q || rel["is_falling_back"] != true || irt["event_id"] != q {
		t.Errorf("placeholder relation = %v, want a thread on %s falling back to a reply", rel, q)
	}
	noPings(t, placeholder)
	w.waitBot(ctx, room, "Reply number 1")

	// In the bot's thread, no mention is needed.
	w.hs.Message(room, alice, inThread("tell me more", q))
	w.waitBot(ctx, room, "Reply number 2")
	p.stop()
	if hist := w.store.History("matrix:" + room + ":" + q); len(hist) != 4 || hist[0].Content != "what is a horde?" {
		t.Errorf("thread history = %+v", hist)
	}
	if n := len(w.submits()); n != 2 {
		t.Errorf("%d submits, want 2 (the chatter is not for the bot)", n)
	}

	// After a restart the bot still knows its thread.
	w.start()
	w.hs.Message(room, alice, inThread("and after a restart?", q))
	w.waitBot(ctx, room, "Reply number 3")
}

func TestLinkInDirectMessageIsStoredAndRedacted(t *testing.T) {
	t.Parallel()
	const key = "linked-key-0123456789abcdef"
	w := newWorld(t, hordetest.WithUsers(hordetest.User{APIKey: key, Username: "alicehorde", Kudos: 4321}))
	w.start()
	ctx := testCtx(t)
	dm := w.hs.NewDM(alice)

	msg := w.hs.Message(dm, alice, text("!link "+key))
	reply := w.waitBot(ctx, dm, "Linked")
	if _, err := w.hs.WaitRedacted(ctx, dm, msg); err != nil {
		t.Fatal(err)
	}
	if reply.MsgType() != "m.notice" || !strings.Contains(reply.Shown(), "alicehorde") {
		t.Errorf("reply = %v", reply.Content)
	}
	u, _ := w.store.UpsertUser(ctx, "matrix", alice, "alice")
	if w.store.Keys[u.ID] != key {
		t.Fatal("the key is not stored")
	}
	assertKeyHidden(t, w, key)
}

func TestLinkInGroupRoomIsRefused(t *testing.T) {
	t.Parallel()
	const key = "linked-key-0123456789abcdef"
	w := newWorld(t, hordetest.WithUsers(hordetest.User{APIKey: key, Username: "alicehorde"}))
	p := w.start()
	ctx := testCtx(t)
	room := w.hs.NewRoom(alice, mallory)

	msg := w.hs.Message(room, alice, text("!link "+key))
	warn := w.waitBot(ctx, room, "direct message")
	if !strings.Contains(warn.Shown(), "regenerate") {
		t.Errorf("warning %q does not say to regenerate the key", warn.Shown())
	}
	if warn.Content["m.relates_to"] != nil {
		t.Errorf("the warning hangs on the redacted message: %v", warn.Content["m.relates_to"])
	}
	noPings(t, warn)
	p.stop()
	if e, _ := w.hs.Event(msg); !e.Redacted() || e.Body() != "" {
		t.Errorf("the message with the key was not redacted: %+v", e)
	}
	u, _ := w.store.UpsertUser(ctx, "matrix", alice, "alice")
	if _, ok := w.store.Keys[u.ID]; ok {
		t.Error("a key sent in a group room was stored")
	}
	assertKeyHidden(t, w, key)
}

func assertKeyHidden(t *testing.T, w *world, key string) {
	t.Helper()
	for _, r := range w.hs.Requests() {
		if strings.Contains(string(r.Body), key) || strings.Contains(r.Path+r.Query, key) {
			t.Errorf("the key is in a request to %s: %.80s", r.Path, r.Body)
		}
	}
	if strings.Contains(w.logs.String(), key) {
		t.Error("the key is in the logs")
	}
}

func TestFirstSyncBacklogIsNotAnswered(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(replyNumber))
	dm := w.hs.NewDM(alice)
	w.hs.Message(dm, alice, text("old question from before the start"))
	p := w.start()
	ctx := testCtx(t)

	w.hs.Message(dm, alice, text("new question"))
	w.waitBot(ctx, dm, "Reply number 1")
	p.stop()
	subs := w.submits()
	if len(subs) != 1 || !strings.Contains(string(subs[0].Body), "new question") || strings.Contains(string(subs[0].Body), "old question") {
		t.Errorf("%d submits; want only the new question", len(subs))
	}
}

func TestRestartMidJobDeliversOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(replyNumber))
	// One progress edit tells the test that the bridge polled the job
	// once and parked it: stopping then is the ordinary mid-job case.
	w.botCfg.MaxProgressEdits = 1
	first := w.start()
	ctx := testCtx(t)
	dm := w.hs.NewDM(alice)
	w.workers(false)
	w.hs.Message(dm, alice, text("survive a restart"))
	placeholder := w.waitBot(ctx, dm, "Asking the Horde")
	w.waitEvent(ctx, dm, "a progress edit", func(e matrixtest.Event) bool { return e.Replaces() == placeholder.ID })
	first.stop()
	if n := w.journal.States()[""]; n != 1 {
		t.Fatalf("%d unfinished jobs in the journal, want 1; states %v\nrequests: %v", n, w.journal.States(), hordeRequests(w))
	}

	second := w.start()
	w.workers(true)
	ans := w.waitBot(ctx, dm, "Reply number 1")
	if rel, _ := ans.Content["m.relates_to"].(map[string]any); rel["event_id"] != placeholder.ID {
		t.Errorf("the answer %v does not edit the placeholder %s", ans.Content, placeholder.ID)
	}
	second.stop()
	n := 0
	for _, e := range w.hs.BotMessages("") {
		if strings.Contains(e.Shown(), "Reply number") {
			n++
		}
	}
	if n != 1 || len(w.submits()) != 1 {
		t.Errorf("%d answers and %d submits, want 1 each", n, len(w.submits()))
	}
	if hist := w.store.History("matrix:" + dm); len(hist) != 2 || hist[1].Content != "Reply number 1" {
		t.Fatalf("history = %+v", hist)
	}

	w.start()
	w.hs.Message(dm, alice, text("still with me?"))
	w.waitBot(ctx, dm, "Reply number 2")
	if subs := w.submits(); len(subs) != 2 || !strings.Contains(string(subs[1].Body), "survive a restart") {
		t.Errorf("the turn delivered after the restart is not in the history (%d submits)", len(subs))
	}
}

func TestPasswordLoginIsKept(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mcfg.AccessToken = ""
	w.mcfg.Password = w.hs.Password()
	w.mcfg.SessionFile = filepath.Join(t.TempDir(), "matrix-session.json")
	w.start().stop()
	st, err := os.Stat(w.mcfg.SessionFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("session file mode %v, want 0600", st.Mode().Perm())
	}
	w.start().stop()
	if n := w.hs.Logins(); n != 1 {
		t.Errorf("%d logins, want 1 (the session is reused)", n)
	}
}

func TestLongAnswerIsUploadedAsFile(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(func(hordetest.Job) string { return strings.Repeat("long answer ", 20) }))
	w.botCfg.AttachOver = 50
	w.start()
	ctx := testCtx(t)
	dm := w.hs.NewDM(alice)
	w.hs.Message(dm, alice, text("write a lot"))
	file := w.waitEvent(ctx, dm, "an m.file", func(e matrixtest.Event) bool {
		return e.Sender == w.hs.BotID() && e.MsgType() == "m.file"
	})
	url, _ := file.Content["url"].(string)
	data := w.hs.Upload(url)
	if !strings.Contains(string(data), "long answer long answer") || file.Content["body"] != "answer.md" {
		t.Errorf("file event %v with %d bytes", file.Content, len(data))
	}
	noPings(t, file)
}

func hordeRequests(w *world) []string {
	var out []string
	for _, r := range w.horde.Requests() {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

func TestEncryptedMessagesGetAHelpfulNoticeOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.start()
	ctx := testCtx(t)
	room := w.hs.NewRoom(alice, mallory)
	enc := func() string {
		return w.hs.Post(room, alice, "m.room.encrypted", map[string]any{
			"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnAC", "sender_key": "k", "device_id": "ALICE", "session_id": "s"})
	}
	first := enc()
	notice := w.waitBot(ctx, room, "cannot read encrypted messages")
	if notice.ReplyTo() != first {
		t.Errorf("the notice does not reply to the encrypted message: %v", notice.Content)
	}
	noPings(t, notice)
	enc()
	// A plain message after the second encrypted one is answered, so the
	// second was handled (in order, by the same sync loop) by then.
	w.hs.Message(room, alice, w.mentionBot("plain question"))
	w.waitBot(ctx, room, "Asking the Horde")
	p.stop()
	n := 0
	for _, e := range w.hs.BotMessages("") {
		if strings.Contains(e.Shown(), "encrypted") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d encryption notices, want 1", n)
	}
}

func TestTokenOnlyInDirectMessages(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.start()
	ctx := testCtx(t)
	room := w.hs.NewRoom(alice, mallory)
	w.hs.Message(room, alice, text("!token"))
	w.waitBot(ctx, room, "direct message")
	dm := w.hs.NewDM(alice)
	w.hs.Message(dm, alice, text("!token"))
	w.waitBot(ctx, dm, "personal API token")
}

func TestCommandsParseErrorsAndNotices(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.start()
	ctx := testCtx(t)
	dm := w.hs.NewDM(alice)
	w.hs.Message(dm, alice, text("!nosuchcommand"))
	e := w.waitBot(ctx, dm, "Unknown command !nosuchcommand")
	if e.MsgType() != "m.notice" {
		t.Errorf("msgtype %v, want m.notice", e.Content["msgtype"])
	}
	w.hs.Message(dm, alice, text("!help"))
	w.waitBot(ctx, dm, "!chat")
}

func TestUnknownCommandsInGroupRoomsAreIgnored(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.start()
	ctx := testCtx(t)
	room := w.hs.NewRoom(alice, mallory)
	w.hs.Message(room, alice, text("!ban mallory"))
	w.hs.Message(room, alice, text("!help"))
	w.waitBot(ctx, room, "!chat")
	p.stop()
	for _, e := range w.hs.BotMessages("") {
		if strings.Contains(e.Shown(), "Unknown command") {
			t.Errorf("answered another bot's command: %q", e.Shown())
		}
	}
}

func TestRoomAdminsByPowerLevel(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.botCfg.PersonaAdminsOnly = true
	w.start()
	ctx := testCtx(t)
	room := w.hs.NewRoom(alice, mallory) // alice made it: power level 100

	w.hs.Message(room, mallory, text("!system You are a pirate."))
	w.waitBot(ctx, room, "Only admins")
	w.hs.Message(room, alice, text("!system You are a pirate."))
	w.waitBot(ctx, room, "New persona")
}
