package bot_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// This file holds the chat core's security tests: nobody acts as someone
// else, and every command obeys the permission lists.
//
// Decisions documented here:
//   - Regenerate and Continue belong to the person who asked the last
//     question of the conversation; everyone else, admins included, is
//     refused (those buttons spend the presser's identity, they do not
//     moderate anything).
//   - Cancel belongs to the asker; an admin may cancel anyone's request
//     (moderation: stop a runaway or abusive request).
//   - /me, /token, /link, /unlink, /settings and /model always act on the
//     caller: there is no way to name another user.
//   - /new and /system act on the conversation, which everyone in it
//     shares; chat.persona_admins_only restricts /system.
//   - The deny lists and chat.dms bind admins too.

// pressed is the refusal sent for Regenerate or Continue by someone else.
const pressed = "Only the person who asked the last question here can use Regenerate or Continue"

// sentTo reports whether an ephemeral notice holding want went to target.
func sentTo(target, want string) func([]event, map[string]string) bool {
	return func(evs []event, _ map[string]string) bool {
		for _, ev := range evs {
			if ev.Kind == "send" && ev.Target == target && strings.Contains(ev.Out.Text, want) && ev.Out.Ephemeral {
				return true
			}
		}
		return false
	}
}

// textIn reports whether any message now holds want.
func textIn(want string) func([]event, map[string]string) bool {
	return func(_ []event, msgs map[string]string) bool {
		for _, m := range msgs {
			if strings.Contains(m, want) {
				return true
			}
		}
		return false
	}
}

func (r *rig) submitCount() int {
	return len(r.fake.RequestsTo(http.MethodPost, "/api/v2/generate/text/async"))
}

// TestSecurityButtonsBelongToTheAsker proves that pressing someone else's
// Regenerate, Continue or Cancel does nothing but tell the presser why,
// that the asker's own presses work, and that an admin may cancel.
func TestSecurityButtonsBelongToTheAsker(t *testing.T) {
	cfg := bot.DefaultConfig()
	cfg.Admins = []string{"root"}
	cfg.UserRate = 0
	var mu sync.Mutex
	n := 0
	r := newRig(t, cfg, 2000, hordetest.WithResponder(func(hordetest.Job) string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("Answer %d", n)
	}))
	jobs := make(chan string, 8)
	r.engine.OnSubmittedForTest(func(userKey, jobID string) { jobs <- userKey + " " + jobID })
	ctx := context.Background()

	alice := r.incoming("alice", "Pick a number")
	r.engine.HandleMessage(ctx, alice)
	r.plat.waitFor(t, "Alice's answer", answered(1))
	<-jobs

	// Bob and an admin press the buttons under Alice's answer: refused,
	// ephemerally, and nothing reaches the Horde.
	for _, who := range []string{"bob", "root"} {
		for _, button := range []string{"regenerate", "continue"} {
			in := r.incoming(who, "")
			in.Target = "chan-1/" + who + "/" + button // to tell the refusals apart
			r.engine.Button(ctx, in, button)
			r.plat.waitFor(t, who+" refused "+button, sentTo(in.Target, pressed))
		}
	}
	if got := r.submitCount(); got != 1 {
		t.Fatalf("%d submits after others pressed Alice's buttons, want 1", got)
	}
	// Alice's own Continue works, and goes out under her name.
	r.engine.Button(ctx, alice, "continue")
	r.plat.waitFor(t, "Alice's continued answer", answered(2))
	<-jobs
	subs := r.fake.RequestsTo(http.MethodPost, "/api/v2/generate/text/async")
	if len(subs) != 2 || !strings.Contains(string(subs[1].Body), "Continue exactly") {
		t.Fatalf("Alice's Continue did not reach the Horde (%d submits)", len(subs))
	}

	// Cancel: a job that waits in the queue until the test says so.
	bridgetest.SetWorkersOnline(t, r.fake, false)
	r.engine.HandleMessage(ctx, r.incoming("alice", "slow one"))
	got := <-jobs
	owner, jobID, _ := strings.Cut(got, " ")
	if owner != "test:alice" {
		t.Fatalf("job of %q, want Alice's", owner)
	}
	bob := r.incoming("bob", "")
	bob.Target = "chan-1/bob/cancel"
	r.engine.Button(ctx, bob, "cancel:"+jobID)
	r.plat.waitFor(t, "Bob's cancel refused", sentTo(bob.Target, "Only the person who asked, or an admin, can cancel"))
	if out := joined(r.call(t, "bob", "!cancel")); !strings.Contains(out, "nothing running here") {
		t.Errorf("Bob's /cancel = %q, want nothing to cancel", out)
	}
	// The job is still live: nobody was told it was cancelled.
	r.plat.mu.Lock()
	for _, m := range r.plat.msgs {
		if strings.Contains(m, "Cancelled") {
			t.Errorf("Alice's job was cancelled by Bob: %q", m)
		}
	}
	r.plat.mu.Unlock()
	// An admin may cancel it (moderation).
	admin := r.incoming("root", "")
	admin.Target = "chan-1/root/cancel"
	r.engine.Button(ctx, admin, "cancel:"+jobID)
	r.plat.waitFor(t, "the admin's cancel", textIn("🛑 Cancelled."))
	// A finished job's button says so.
	r.engine.Button(ctx, alice, "cancel:"+jobID)
	r.plat.waitFor(t, "cancel of a finished job", sentTo(alice.Target, "already finished"))
}

// TestSecurityCommandsActOnTheCaller proves that no command reads or
// changes another user's key, token, settings or model.
func TestSecurityCommandsActOnTheCaller(t *testing.T) {
	r := newRig(t, bot.DefaultConfig(), 2000)
	ctx := context.Background()
	if out := joined(r.call(t, "alice", "!link "+hordetest.TestAPIKey)); !strings.Contains(out, "tester#1") {
		t.Fatalf("link = %q", out)
	}
	joined(r.call(t, "alice", "!settings temperature=0.3 max_tokens=200"))
	joined(r.call(t, "alice", "!model Hermes-3-Llama-3.1-8B"))
	aliceTok := joined(r.call(t, "alice", "!token"))

	checks := []struct{ line, want, not string }{
		{"!me", "No Horde key linked", "tester#1"},
		{"!settings", "the model's default", "0.3"},
		{"!model", "default model", "Hermes"},
		{"!unlink", "You had no Horde key linked", ""},
		{"!token revoke", "Revoked 0 token(s)", ""},
		{"!settings temperature=1.5", "Temperature: 1.5", ""},
		{"!model Fimbulvetr-11B-v2", "Fimbulvetr", ""},
	}
	for _, c := range checks {
		out := joined(r.call(t, "bob", c.line))
		if !strings.Contains(out, c.want) || c.not != "" && strings.Contains(out, c.not) {
			t.Errorf("Bob's %s = %q; want %q and none of Alice's %q", c.line, out, c.want, c.not)
		}
	}
	bobTok := joined(r.call(t, "bob", "!token"))
	if bobTok == aliceTok {
		t.Error("Bob was shown Alice's token")
	}

	// Alice's state is untouched by all that.
	alice, _ := r.store.UpsertUser(ctx, "test", "alice", "")
	st, _ := r.store.UserSettings(ctx, alice.ID)
	if st.Temperature == nil || *st.Temperature != 0.3 || st.MaxTokens == nil || *st.MaxTokens != 200 || !strings.Contains(st.Model, "Hermes") {
		t.Errorf("Alice's settings changed: %+v", st)
	}
	if r.store.Keys[alice.ID] != hordetest.TestAPIKey {
		t.Error("Bob's /unlink removed Alice's key")
	}
	if out := joined(r.call(t, "alice", "!token revoke")); !strings.Contains(out, "Revoked 1 token(s)") {
		t.Errorf("Alice's token did not survive Bob's revoke: %q", out)
	}
}

// Refusals every command gives before it runs.
const (
	refusedUser  = "You are not allowed to use this bot."
	refusedPlace = "I am not allowed to answer here."
	refusedDM    = "Direct messages are turned off here"
	adminsOnly   = "Only admins can use"
)

// callerKind is one kind of caller in the permission matrix.
type callerKind struct {
	name string
	dms  bool // chat.dms
	in   func(bot.Incoming) bot.Incoming
	// refusal is what every command answers, "" when commands run.
	refusal string
	admin   bool
}

func callerKinds() []callerKind {
	as := func(user string) func(bot.Incoming) bot.Incoming {
		return func(in bot.Incoming) bot.Incoming { in.Author.ID = user; return in }
	}
	dm := func(in bot.Incoming) bot.Incoming { in.Author.ID, in.DM, in.Server = "bob", true, ""; return in }
	return []callerKind{
		{name: "admin", dms: true, in: as("root"), admin: true},
		{name: "ordinary user", dms: true, in: as("bob")},
		{name: "denied user", dms: true, in: as("mallory"), refusal: refusedUser},
		{name: "denied channel", dms: true, in: func(in bot.Incoming) bot.Incoming { in.Author.ID, in.Channel = "bob", "chan-denied"; return in }, refusal: refusedPlace},
		{name: "denied server", dms: true, in: func(in bot.Incoming) bot.Incoming { in.Author.ID, in.Server = "bob", "srv-denied"; return in }, refusal: refusedPlace},
		{name: "admin in a denied channel", dms: true, in: func(in bot.Incoming) bot.Incoming { in.Author.ID, in.Channel = "root", "chan-denied"; return in }, refusal: refusedPlace, admin: true},
		{name: "DM with DMs off", dms: false, in: dm, refusal: refusedDM},
		{name: "DM with DMs on", dms: true, in: dm},
	}
}

// commandRow is what one command does for callers it runs for.
type commandRow struct {
	line string
	// ran is in the reply when the command ran; "" for chat commands,
	// which answer with a placeholder and then the model.
	ran string
	// adminOnly: ordinary users get "Only admins can use" (Access Admins).
	adminOnly bool
	// ordinary overrides ran for a non-admin caller.
	ordinary string
}

// commandMatrix has a row for every registered command; a new command
// without a row fails TestSecurityPermissionMatrix.
var commandMatrix = map[string]commandRow{
	"chat":     {line: "!chat hello there"},
	"ask":      {line: "!ask hello there"},
	"new":      {line: "!new", ran: "fresh conversation"},
	"model":    {line: "!model", ran: "default model"},
	"models":   {line: "!models", ran: "Models with workers now"},
	"link":     {line: "!link " + hordetest.TestAPIKey, ran: "Linked to Horde account"},
	"unlink":   {line: "!unlink", ran: "Horde key"},
	"me":       {line: "!me", ran: "Model:"},
	"token":    {line: "!token", ran: "personal API token"},
	"system":   {line: "!system be brief", ran: "persona", ordinary: "Only admins can change the persona here."},
	"settings": {line: "!settings", ran: "Temperature:"},
	"cancel":   {line: "!cancel", ran: "nothing running here"},
	"help":     {line: "!help", ran: "hordechat** answers"},
}

// TestSecurityPermissionMatrix runs every registered command as every kind
// of caller and checks the exact outcome: refused with the right message
// (ephemeral, before the handler: nothing reaches the Horde) or run.
func TestSecurityPermissionMatrix(t *testing.T) {
	cfg := bot.DefaultConfig()
	cfg.Admins = []string{"root"}
	cfg.DenyUsers = []string{"mallory"}
	cfg.DenyChannels = []string{"chan-denied"}
	cfg.DenyServers = []string{"test:srv-denied"}
	cfg.PersonaAdminsOnly = true
	cfg.UserRate, cfg.UserConcurrency = 0, 20
	rigs := map[bool]*rig{}
	for _, dms := range []bool{true, false} {
		c := cfg
		c.DMs = dms
		rigs[dms] = newRig(t, c, 2000)
	}

	registered := map[string]bool{}
	for _, c := range rigs[true].engine.Commands().All() {
		registered[c.Name] = true
		row, ok := commandMatrix[c.Name]
		if !ok {
			t.Errorf("command %q has no row in commandMatrix: decide who may run it", c.Name)
			continue
		}
		if row.adminOnly != (c.Access == bot.Admins) {
			t.Errorf("command %q: Access is %v but its row says adminOnly=%v", c.Name, c.Access, row.adminOnly)
		}
	}
	for name := range commandMatrix {
		if !registered[name] {
			t.Errorf("commandMatrix row %q names no registered command", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	chats := map[*rig][]string{} // targets where a chat must have started
	for _, kind := range callerKinds() {
		r := rigs[kind.dms]
		for _, c := range r.engine.Commands().All() {
			row := commandMatrix[c.Name]
			t.Run(kind.name+"/"+c.Name, func(t *testing.T) {
				cell := strings.ReplaceAll(kind.name, " ", "-") + "/" + c.Name
				in := kind.in(bot.Incoming{Platform: "test", ConversationID: "test:" + cell, Target: cell, MessageID: "m-" + cell,
					Author: bot.Author{DisplayName: "someone"}, Server: "srv", Channel: "chan-1"})
				cmd, args, err := r.engine.Commands().ParseText("!", row.line)
				if err != nil || cmd == nil || cmd.Name != c.Name {
					t.Fatalf("row line %q does not parse as %s: %v", row.line, c.Name, err)
				}
				var mu sync.Mutex
				var replies []bot.Outgoing
				r.engine.RunCommand(context.Background(), &bot.Call{Command: cmd, In: in, Args: args, Prefix: "!", Respond: func(_ context.Context, out bot.Outgoing) error {
					mu.Lock()
					defer mu.Unlock()
					replies = append(replies, out)
					return nil
				}})
				mu.Lock()
				defer mu.Unlock()
				want := row.ran
				switch {
				case kind.refusal != "":
					want = kind.refusal
				case row.adminOnly && !kind.admin:
					want = adminsOnly
				case row.ordinary != "" && !kind.admin:
					want = row.ordinary
				}
				if want == "" { // a chat command that runs
					if len(replies) != 0 {
						t.Errorf("replies %+v, want the chat to start", replies)
					}
					chats[r] = append(chats[r], cell)
					r.plat.waitFor(t, "the placeholder", func(evs []event, _ map[string]string) bool {
						for _, ev := range evs {
							if ev.Target == cell && strings.Contains(ev.Out.Text, "Asking the Horde") {
								return true
							}
						}
						return false
					})
					return
				}
				if len(replies) != 1 || !strings.Contains(replies[0].Text, want) {
					t.Fatalf("replies %+v, want one holding %q", replies, want)
				}
				if want == kind.refusal && !replies[0].Ephemeral {
					t.Errorf("the refusal is not ephemeral")
				}
			})
		}
	}
	// Every queued turn has run once the engines are closed: no refused
	// cell may have reached the platform or the Horde.
	for _, r := range rigs {
		r.engine.Close()
		want := map[string]bool{}
		for _, cell := range chats[r] {
			want[cell] = true
		}
		r.plat.mu.Lock()
		for _, ev := range r.plat.events {
			if !want[ev.Target] {
				t.Errorf("%s got %q, but no chat should have started there", ev.Target, ev.Out.Text)
			}
		}
		r.plat.mu.Unlock()
		if got := r.submitCount(); got > len(chats[r]) {
			t.Errorf("%d submits for %d chats that ran", got, len(chats[r]))
		}
	}
}
