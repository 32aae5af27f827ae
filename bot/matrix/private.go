package matrix

import (
	"context"
	"sync"

	"maunium.net/go/mautrix/id"

	"github.com/hordechat/hordechat/bot"
)

// privateAnswers are the commands whose answer shows a person's own data:
// their linked Horde account, its kudos, their usage. Discord shows such
// answers to the asker only; Matrix has no private replies in a shared
// room, so there the answer goes to the person's direct chat with the bot,
// or, when the bot knows none, the person is asked to use one. (The bot
// does not open direct chats itself: an unasked invite is spammy and needs
// the person to accept it first.)
var privateAnswers = map[string]bool{"me": true}

// maxKnownDMs bounds the direct chats remembered.
const maxKnownDMs = 10000

// rememberDM notes room as user's direct chat with the bot. Only rooms the
// user wrote in count; the list is in memory, so after a restart a person
// is asked to write in their direct chat once more.
func (a *Adapter) rememberDM(user id.UserID, room id.RoomID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.dms) >= maxKnownDMs {
		clear(a.dms)
	}
	a.dms[user] = room
}

// dmWith returns user's direct chat with the bot if the bot knows one and
// it still holds just the two of them.
func (a *Adapter) dmWith(ctx context.Context, user id.UserID) (id.RoomID, bool) {
	a.mu.Lock()
	room, ok := a.dms[user]
	a.mu.Unlock()
	if !ok {
		return "", false
	}
	members, err := a.roomMembers(ctx, room)
	if err != nil {
		a.log.Debug("direct chat members", "room", room, "err", err)
		return "", false
	}
	_, userIn := members[user]
	_, botIn := members[id.UserID(a.cfg.UserID)]
	return room, len(members) == 2 && userIn && botIn
}

// runPrivate runs a privateAnswers command asked in a shared room: the
// answer goes to the asker's direct chat and the room is told so; without
// a direct chat, the room is told to ask there. Nothing of the answer is
// posted in the shared room.
func (a *Adapter) runPrivate(ctx context.Context, in bot.Incoming, cmd *bot.Command, args map[string]any) {
	prefix := a.cfg.CommandPrefix
	askInDM := "Send " + prefix + cmd.Name + " to me in a direct message: its answer shows your own account, and Matrix has no private replies in a shared room."
	notice := func(ctx context.Context, msg string) {
		if _, err := a.Send(ctx, in.Target, bot.Outgoing{Text: msg, Notice: true}); err != nil {
			a.log.Warn("send private-answer notice", "err", err)
		}
	}
	dm, ok := a.dmWith(ctx, id.UserID(in.Author.ID))
	if !ok {
		notice(ctx, askInDM)
		return
	}
	var told sync.Once
	a.engine.RunCommand(ctx, &bot.Call{
		Command: cmd, In: in, Args: args, Prefix: prefix,
		Respond: func(ctx context.Context, out bot.Outgoing) error {
			out.Notice = true
			if _, err := a.Send(ctx, target{Room: dm.String()}.encode(), out); err != nil {
				notice(ctx, askInDM)
				return err
			}
			told.Do(func() { notice(ctx, "📬 I sent my answer to our direct chat.") })
			return nil
		},
	})
}
