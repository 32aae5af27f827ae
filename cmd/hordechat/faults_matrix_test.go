package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hordechat/hordechat/bot/matrix/matrixtest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// k9Matrix is the Matrix side of the kill -9 world: a fake homeserver
// with DMs and group rooms, on which the bot answers mentions in threads.
type k9Matrix struct {
	hs    *matrixtest.Server
	users []string
	dms   []string // dms[i] is users[i]'s direct chat with the bot
	rooms []string // group rooms with every user
	// keys are the Horde keys of users[i] for i < len(keys): those users
	// link them with !link in their DM.
	keys []string
}

// addMatrix turns Matrix on in the world's configuration. It must run
// before the first start; it adds the linked users' accounts to the Horde.
func (w *k9World) addMatrix(nUsers, nRooms, nLinked int) {
	m := &k9Matrix{hs: matrixtest.New(w.t)}
	for i := range nUsers {
		m.users = append(m.users, fmt.Sprintf("@mxuser%02d:%s", i, matrixtest.ServerName))
	}
	for _, u := range m.users {
		m.dms = append(m.dms, m.hs.NewDM(u))
	}
	for range nRooms {
		m.rooms = append(m.rooms, m.hs.NewRoom(m.users...))
	}
	for i := range nLinked {
		k := fmt.Sprintf("k9-mx-linked-key-%02d-abcdef", i)
		m.keys = append(m.keys, k)
		w.horde.AddUser(hordetest.User{APIKey: k, Username: fmt.Sprintf("mxlinked%02d", i), Kudos: 1e6, Concurrency: 100})
	}
	w.mx = m
	w.env = append(w.env,
		"HORDECHAT_MATRIX__HOMESERVER="+m.hs.URL(),
		"HORDECHAT_MATRIX__USER_ID="+m.hs.BotID(),
		"HORDECHAT_MATRIX__ACCESS_TOKEN="+m.hs.Token(),
	)
}

// allRooms lists the DMs and group rooms.
func (m *k9Matrix) allRooms() []string { return append(append([]string(nil), m.dms...), m.rooms...) }

// firstTag returns the tag of the first Matrix turn.
func (m *k9Matrix) firstTag(turns []k9Turn) string {
	for _, tu := range turns {
		if tu.platform == "matrix" {
			return tu.tag
		}
	}
	return ""
}

// waitMatrix waits until c has read its first sync: messages posted
// before that are backlog, which the bot does not answer.
func (w *k9World) waitMatrix(ctx context.Context, c *child) {
	w.t.Helper()
	if err := k9Poll(ctx, "the first Matrix sync", func() bool { return strings.Contains(c.stderr.String(), `"msg":"matrix connected"`) }); err != nil {
		w.t.Fatalf("%v\n%s", err, c.stderr.String())
	}
}

// mxLink makes Matrix user i link their Horde key with !link in their DM.
func (w *k9World) mxLink(ctx context.Context, i int) {
	w.t.Helper()
	m := w.mx
	m.hs.Say(m.dms[i], m.users[i], "!link "+m.keys[i])
	if _, err := m.hs.WaitBotMessage(ctx, m.dms[i], "Linked"); err != nil {
		w.t.Fatalf("matrix user %d: !link not confirmed: %v", i, err)
	}
}

// mxDM asks in Matrix user i's DM.
func (w *k9World) mxDM(user int, tag string) k9Turn {
	m := w.mx
	m.hs.Say(m.dms[user], m.users[user], k9Question(tag))
	return k9Turn{tag: tag, platform: "matrix", place: m.dms[user], room: m.dms[user], conv: "matrix:" + m.dms[user], user: user}
}

// mxMention asks in a group room with a mention: the bot answers in a
// thread on the message.
func (w *k9World) mxMention(room, user int, tag string) k9Turn {
	m := w.mx
	r := m.rooms[room]
	id := m.hs.Message(r, m.users[user], matrixtest.Mention(m.hs.BotID(), k9Question(tag)))
	return k9Turn{tag: tag, platform: "matrix", place: r + "|" + id, room: r, conv: "matrix:" + r + ":" + id, user: user}
}

// mxInThread asks in one of the bot's threads, without a mention.
func (w *k9World) mxInThread(thread k9Turn, user int, tag string) k9Turn {
	m := w.mx
	root := strings.TrimPrefix(thread.place, thread.room+"|")
	m.hs.Message(thread.room, m.users[user], matrixtest.InThread(matrixtest.Text(k9Question(tag)), root))
	return k9Turn{tag: tag, platform: "matrix", place: thread.place, room: thread.room, conv: thread.conv, user: user}
}

// k9MxMessage is a message of the bot as a client shows it: the original
// event with the text of its latest edit.
type k9MxMessage struct {
	place string // room, or room|thread root
	text  string
}

// mxBotMessages returns the bot's messages in the rooms of the world, a
// placeholder edited into the answer counting once.
func (w *k9World) mxBotMessages() []k9MxMessage {
	m := w.mx
	var out []k9MxMessage
	for _, room := range m.allRooms() {
		for _, e := range m.hs.BotMessages(room) {
			if e.Replaces() != "" || e.Redacted() {
				continue
			}
			place := room
			if root := e.ThreadRoot(); root != "" {
				place = room + "|" + root
			}
			out = append(out, k9MxMessage{place: place, text: m.hs.CurrentText(e.ID)})
		}
	}
	return out
}

// mxWaitAnswer waits until the answer of a Matrix turn shows.
func (w *k9World) mxWaitAnswer(ctx context.Context, tu k9Turn) error {
	_, err := w.mx.hs.WaitBotMessage(ctx, tu.room, "Answer to "+tu.tag+":")
	return err
}

// mxCheckChat is checkChat for Matrix: one message per turn, in the turn's
// room and thread; besides answers only the !link confirmations.
func (w *k9World) mxCheckChat(t *testing.T, turns []k9Turn, v1Tags []string) (duplicates, losses int) {
	t.Helper()
	msgs := w.mxBotMessages()
	perPlace := map[string]int{}
	for _, tu := range turns {
		perPlace[tu.place]++
		want := "Answer to " + tu.tag + ":"
		n := 0
		for _, msg := range msgs {
			if strings.Contains(msg.text, want) {
				n++
				if msg.place != tu.place {
					t.Errorf("matrix turn %s: answered in %s, want %s", tu.tag, msg.place, tu.place)
				}
			}
		}
		switch {
		case n == 0:
			losses++
			t.Errorf("matrix turn %s: no answer", tu.tag)
		case n > 1:
			duplicates += n - 1
			t.Errorf("matrix turn %s: answered %d times", tu.tag, n)
		}
	}
	got := map[string]int{}
	for _, msg := range msgs {
		for _, tag := range v1Tags {
			if strings.Contains(msg.text, tag) {
				t.Errorf("the /v1 job %s was delivered on Matrix (%s)", tag, msg.place)
			}
		}
		if strings.Contains(msg.text, "Linked to Horde account") {
			continue // the !link confirmation
		}
		got[msg.place]++
		if !strings.Contains(msg.text, "Answer to ") {
			t.Errorf("stray bot message on Matrix in %s: %q", msg.place, msg.text)
		}
	}
	for place, n := range got {
		if n > perPlace[place] {
			duplicates += n - perPlace[place]
			t.Errorf("%d bot messages on Matrix in %s, want %d", n, place, perPlace[place])
		}
	}
	return duplicates, losses
}
