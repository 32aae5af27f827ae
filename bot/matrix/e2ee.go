package matrix

import (
	"context"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/hordechat/hordechat/bot"
)

// e2ee is end-to-end encryption (matrix.encryption): built with the goolm
// tag it is mautrix's OlmMachine (crypto.go); without it, turning
// encryption on is an error at start (crypto_nogoolm.go).
type e2ee interface {
	// processSync feeds a /sync response's to-device events, device list
	// changes and one-time key counts to the machine, and notes rooms
	// that turned encryption on.
	processSync(ctx context.Context, resp *mautrix.RespSync, since string)
	// encrypt returns what to send into room: c as is for an unencrypted
	// room, else c encrypted as m.room.encrypted.
	encrypt(ctx context.Context, room id.RoomID, c *event.MessageEventContent) (event.Type, any, error)
	// decrypt decrypts an m.room.encrypted event, waiting up to wait for
	// its room key when it has not arrived yet.
	decrypt(ctx context.Context, evt *event.Event, wait time.Duration) (*event.Event, error)
	close() error
}

// WithKeyWait sets how long an encrypted event whose room key has not
// arrived yet waits for it before the "could not decrypt" notice
// (default 10 s).
func WithKeyWait(d time.Duration) Option { return func(a *Adapter) { a.keyWait = d } }

// onEncrypted decrypts an m.room.encrypted event and handles the message
// in it; one it cannot decrypt gets a notice, not silence.
func (a *Adapter) onEncrypted(ctx context.Context, evt *event.Event) {
	dec, err := a.e2e.decrypt(ctx, evt, a.keyWait)
	if err != nil {
		a.log.Warn("cannot decrypt matrix event", "room", evt.RoomID, "event", evt.ID, "sender", evt.Sender, "err", err)
		msg := "🔒 I could not decrypt your message, so I did not see what you wrote. " +
			"Please send it again. If this keeps happening, verify my session (device " + a.cli.DeviceID.String() +
			") in your client, or make sure your client shares room keys with unverified devices."
		t := target{Room: evt.RoomID.String(), Reply: evt.ID.String()}
		if ec, ok := evt.Content.Parsed.(*event.EncryptedEventContent); ok {
			// Clients copy the relation outside: answer in the thread.
			t.Thread = ec.RelatesTo.GetThreadParent().String()
		}
		if _, err := a.Send(ctx, t.encode(), bot.Outgoing{Text: msg, Notice: true}); err != nil {
			a.log.Warn("send decryption notice", "room", evt.RoomID, "err", err)
		}
		return
	}
	if dec.Type != event.EventMessage {
		return
	}
	dec.RoomID = evt.RoomID
	a.onMessage(ctx, dec)
}
