//go:build goolm

package matrix_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jonboulle/clockwork"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/hordechat/hordechat/bot/matrix"
	"github.com/hordechat/hordechat/bot/matrix/matrixtest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// newEncryptedWorld is newWorld with encryption on and a crypto database
// in the test's own directory.
func newEncryptedWorld(t *testing.T, horde ...hordetest.Option) *world {
	w := newWorld(t, horde...)
	w.mcfg.Encryption = true
	w.mcfg.CryptoDatabase = filepath.Join(t.TempDir(), "matrix-crypto.db")
	return w
}

// human is a test user with an OlmMachine of its own (in-memory store),
// talking to the bot in encrypted rooms through the fake.
type human struct {
	t      *testing.T
	hs     *matrixtest.Server
	user   string
	device string
	mach   *crypto.OlmMachine
	state  *mautrix.MemoryStateStore
	clear  map[string]*event.Event // decrypted bot events by id
	failed map[string]error        // bot events it could not decrypt (yet)
}

func newHuman(t *testing.T, ctx context.Context, hs *matrixtest.Server, user, device string) *human {
	t.Helper()
	token := "syt_" + device
	hs.AddDevice(token, user, device)
	cli, err := mautrix.NewClient(hs.URL(), id.UserID(user), token)
	if err != nil {
		t.Fatal(err)
	}
	cli.DeviceID = id.DeviceID(device)
	log := zerolog.Nop()
	h := &human{t: t, hs: hs, user: user, device: device, state: mautrix.NewMemoryStateStore().(*mautrix.MemoryStateStore),
		clear: map[string]*event.Event{}, failed: map[string]error{}}
	h.mach = crypto.NewOlmMachine(cli, &log, crypto.NewMemoryStore(nil), h.state)
	if err := h.mach.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.mach.ShareKeys(ctx, -1); err != nil {
		t.Fatal(err)
	}
	return h
}

// say encrypts a message in room and posts it; the room key goes to the
// bot's device first (to-device), as a client does.
func (h *human) say(ctx context.Context, room string, content *event.MessageEventContent) string {
	h.t.Helper()
	r := id.RoomID(room)
	_ = h.state.SetEncryptionEvent(ctx, r, &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1})
	enc, err := h.mach.EncryptMegolmEvent(ctx, r, event.EventMessage, content)
	if err != nil {
		if err := h.mach.ShareGroupSession(ctx, r, []id.UserID{id.UserID(h.user), id.UserID(h.hs.BotID())}); err != nil {
			h.t.Fatalf("share group session: %v", err)
		}
		if enc, err = h.mach.EncryptMegolmEvent(ctx, r, event.EventMessage, content); err != nil {
			h.t.Fatalf("encrypt: %v", err)
		}
	}
	return h.hs.Post(room, h.user, "m.room.encrypted", matrixtest.ContentOf(enc))
}

// read feeds the human's to-device events to its machine and decrypts the
// bot's encrypted events in room; it returns the first whose shown text
// contains want, waiting for it.
func (h *human) read(ctx context.Context, room, want string) *event.Event {
	h.t.Helper()
	for {
		ch := h.hs.Changed() // before looking: a change after it wakes us
		toDev := h.hs.TakeToDevice(h.user, h.device)
		var evts []matrixtest.Event
		for _, e := range h.hs.Events(room) {
			if e.Sender == h.hs.BotID() && e.Type == "m.room.encrypted" {
				evts = append(evts, e)
			}
		}
		for _, td := range toDev {
			typ := event.Type{Type: td.Type, Class: event.ToDeviceEventType}
			evt := &event.Event{Sender: id.UserID(td.Sender), Type: typ, Content: event.Content{VeryRaw: td.Content}}
			if err := evt.Content.ParseRaw(typ); err != nil {
				h.t.Fatalf("to-device %s: %v", typ.Type, err)
			}
			h.mach.HandleToDeviceEvent(ctx, evt)
		}
		for _, e := range evts {
			if _, done := h.clear[e.ID]; done {
				continue
			}
			raw, _ := json.Marshal(e.Content)
			evt := &event.Event{ID: id.EventID(e.ID), RoomID: id.RoomID(room), Sender: id.UserID(e.Sender), Type: event.EventEncrypted,
				Timestamp: e.TS, Content: event.Content{VeryRaw: raw}}
			if err := evt.Content.ParseRaw(event.EventEncrypted); err != nil {
				h.t.Fatalf("bot event %s: %v", e.ID, err)
			}
			dec, err := h.mach.DecryptMegolmEvent(ctx, evt)
			if err != nil {
				h.failed[e.ID] = err
				continue
			}
			delete(h.failed, e.ID)
			h.clear[e.ID] = dec
		}
		for _, e := range evts {
			if dec := h.clear[e.ID]; dec != nil && strings.Contains(shownEvent(dec), want) {
				return dec
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			h.t.Fatalf("waiting for an encrypted bot message with %q in %s: %v (undecryptable: %v)", want, room, ctx.Err(), h.failed)
		}
	}
}

// shownEvent is the text a client shows for a decrypted message.
func shownEvent(e *event.Event) string {
	var c map[string]any
	_ = json.Unmarshal(e.Content.VeryRaw, &c)
	return matrixtest.Shown(c)
}

func TestEncryptedRoomRoundTrip(t *testing.T) {
	t.Parallel()
	w := newEncryptedWorld(t, hordetest.WithResponder(replyNumber))
	dir := filepath.Dir(w.mcfg.CryptoDatabase)
	p := w.start()
	ctx := testCtx(t)
	al := newHuman(t, ctx, w.hs, alice, "ALICEDEV")
	dm := w.hs.NewDM(alice)
	w.hs.EncryptRoom(dm)

	al.say(ctx, dm, &event.MessageEventContent{MsgType: event.MsgText, Body: "hello there"})
	al.read(ctx, dm, "Asking the Horde")
	ans := al.read(ctx, dm, "Reply number 1")
	if ans.Type != event.EventMessage || ans.Sender != id.UserID(w.hs.BotID()) {
		t.Errorf("answer = %s from %s, want an m.room.message from the bot", ans.Type.Type, ans.Sender)
	}
	if got := w.hs.BotMessages(""); len(got) != 0 {
		t.Errorf("the bot sent %d unencrypted messages into an encrypted room: %v", len(got), got)
	}

	// The same group session carries the next turn both ways.
	al.say(ctx, dm, &event.MessageEventContent{MsgType: event.MsgText, Body: "and again"})
	al.read(ctx, dm, "Reply number 2")
	p.stop()
	if hist := w.store.History("matrix:" + dm); len(hist) != 4 {
		t.Errorf("history of matrix:%s has %d messages, want 4", dm, len(hist))
	}
	// The keys are kept: a pickle key file (0600) beside the database.
	fi, err := os.Stat(filepath.Join(dir, "matrix-pickle.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("pickle key file: %v, mode %v; want 0600", err, fi)
	}

	// A restart loads the same device keys from the crypto database and
	// keeps decrypting with the sessions it has.
	p2 := w.start()
	al.say(ctx, dm, &event.MessageEventContent{MsgType: event.MsgText, Body: "after a restart"})
	al.read(ctx, dm, "Reply number 3")
	p2.stop()
}

func TestUndecryptableEventGetsANotice(t *testing.T) {
	t.Parallel()
	w := newEncryptedWorld(t)
	w.mcfg.PickleKey = "a pickle key from the config"
	w.opts = append(w.opts, matrix.WithKeyWait(0)) // the key never comes
	p := w.start()
	ctx := testCtx(t)
	al := newHuman(t, ctx, w.hs, alice, "ALICEDEV")
	room := w.hs.NewRoom(alice, mallory)
	w.hs.EncryptRoom(room)
	// A message whose room key never reaches the bot.
	evID := w.hs.Post(room, alice, "m.room.encrypted", map[string]any{
		"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg2yyOwAtHaZTwyNg37afzg8f3r9IsN9rH4RNFg",
		"sender_key": "NW3x6zSHnDF0J9Bme2bZLNBxlSqJYgFbDnm5fRmBvGY", "device_id": "ALICEDEV", "session_id": "X6ELMwXcUD2Jgl2SIV8+LdOnS5jBYIq8mVc2DvkFDjw"})
	dec := al.read(ctx, room, "could not decrypt")
	c := dec.Content.AsMessage()
	if c.MsgType != event.MsgNotice || c.RelatesTo.GetReplyTo() != id.EventID(evID) {
		t.Errorf("notice = %+v, want a notice replying to %s", c, evID)
	}
	if !strings.Contains(c.Body, "send it again") || !strings.Contains(c.Body, "verify") {
		t.Errorf("notice %q does not say to re-send or verify", c.Body)
	}
	p.stop()
}

func TestEncryptedGroupRoomSharesKeysWithNewMembers(t *testing.T) {
	t.Parallel()
	w := newEncryptedWorld(t, hordetest.WithResponder(replyNumber))
	p := w.start()
	ctx := testCtx(t)
	al := newHuman(t, ctx, w.hs, alice, "ALICEDEV")
	room := w.hs.NewRoom(alice, mallory)
	w.hs.EncryptRoom(room)
	mention := func(body string) *event.MessageEventContent {
		return &event.MessageEventContent{MsgType: event.MsgText, Body: "hordechat: " + body,
			Mentions: &event.Mentions{UserIDs: []id.UserID{id.UserID(w.hs.BotID())}}}
	}
	al.say(ctx, room, mention("first question"))
	al.read(ctx, room, "Reply number 1")

	// Bob joins with a device of his own; the bot's next answer must be
	// readable by him too (a new group session, shared with him).
	const bob = "@bob:hs.test"
	bb := newHuman(t, ctx, w.hs, bob, "BOBDEV")
	w.hs.Join(room, bob)
	// Alice's client shares a new session with the new member too.
	if err := al.mach.CryptoStore.RemoveOutboundGroupSession(ctx, id.RoomID(room)); err != nil {
		t.Fatal(err)
	}
	if err := al.mach.ShareGroupSession(ctx, id.RoomID(room), []id.UserID{alice, bob, id.UserID(w.hs.BotID())}); err != nil {
		t.Fatal(err)
	}
	al.say(ctx, room, mention("second question"))
	bb.read(ctx, room, "Reply number 1")
	al.read(ctx, room, "Reply number 1")
	p.stop()
}

func TestEncryptionOnStillSpeaksPlainInUnencryptedRooms(t *testing.T) {
	t.Parallel()
	w := newEncryptedWorld(t, hordetest.WithResponder(replyNumber))
	p := w.start()
	ctx := testCtx(t)
	dm := w.hs.NewDM(alice)
	w.hs.Message(dm, alice, text("hello in the clear"))
	w.waitBot(ctx, dm, "Reply number 1")
	p.stop()
}

// A homeserver that fails while the bot uploads its device keys at start
// is waited for, like a failing login: the bot then answers encrypted.
func TestFaultEncryptionSetUpWaitsForTheHomeserver(t *testing.T) {
	t.Parallel()
	w := newEncryptedWorld(t, hordetest.WithResponder(replyNumber))
	clock := clockwork.NewFakeClock()
	tr := &refusedAtStart{path: "/keys/upload", next: http.DefaultTransport}
	tr.left.Store(2)
	w.opts = append(w.opts, matrix.WithClock(clock), matrix.WithHTTPClient(&http.Client{Transport: tr}))
	ctx := testCtx(t)
	passRetries(ctx, clock)
	p := w.start() // Ready: encryption was set up after all
	al := newHuman(t, ctx, w.hs, alice, "ALICEDEV")
	dm := w.hs.NewDM(alice)
	w.hs.EncryptRoom(dm)
	al.say(ctx, dm, &event.MessageEventContent{MsgType: event.MsgText, Body: "hello there"})
	al.read(ctx, dm, "Reply number 1")
	p.stop()
	if n := strings.Count(w.logs.String(), `msg="matrix encryption set-up failed; retrying"`); n != 2 {
		t.Errorf("%d set-up retry warnings, want 2\n%s", n, w.logs.String())
	}
}
