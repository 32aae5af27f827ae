package discordtest

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
)

// testTimeout is a safety net against hangs, not an assertion on timing.
const testTimeout = 20 * time.Second

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// world is a fake with one guild, a text channel, an announcement channel,
// a role and a user.
type world struct {
	fake  *Server
	guild *discordgo.Guild
	text  *discordgo.Channel
	news  *discordgo.Channel
	role  *discordgo.Role
	alice *discordgo.User
}

func newWorld(tb testing.TB, opts ...Option) *world {
	tb.Helper()
	f := New(tb, opts...)
	w := &world{fake: f}
	w.alice = f.AddUser(&discordgo.User{Username: "alice", GlobalName: "Alice"})
	w.guild = f.AddGuild(&discordgo.Guild{Name: "horde", OwnerID: "1"})
	w.role = f.AddRole(w.guild.ID, &discordgo.Role{Name: "admins", Permissions: discordgo.PermissionAdministrator})
	f.AddMember(w.guild.ID, &discordgo.Member{User: w.alice, Nick: "ali", Roles: []string{w.role.ID}})
	w.text = f.AddChannel(&discordgo.Channel{GuildID: w.guild.ID, Name: "general", Type: discordgo.ChannelTypeGuildText})
	w.news = f.AddChannel(&discordgo.Channel{GuildID: w.guild.ID, Name: "news", Type: discordgo.ChannelTypeGuildNews})
	return w
}

// MustSession builds a discordgo session pointed at the fake, without
// opening it. Reconnection is off unless reconnect.
func mustSession(tb testing.TB, f *Server, intents discordgo.Intent, reconnect bool) *discordgo.Session {
	tb.Helper()
	dg, err := discordgo.New("Bot " + f.Token())
	if err != nil {
		tb.Fatal(err)
	}
	dg.Client = &http.Client{Transport: RewriteTransport(f.URL, nil), Timeout: testTimeout}
	dg.Identify.Intents = intents
	dg.ShouldReconnectOnError = reconnect
	dg.LogLevel = -1
	// Handlers run in the listen goroutine, in gateway order; by default
	// discordgo runs each in its own goroutine, in no particular order.
	dg.SyncEvents = true
	return dg
}

// mustOpen opens a session; with reconnect it is closed at cleanup (which
// costs discordgo's one-second sleep), else the fake's cleanup drops it.
func mustOpen(tb testing.TB, f *Server, intents discordgo.Intent, reconnect bool) *discordgo.Session {
	tb.Helper()
	dg := mustSession(tb, f, intents, reconnect)
	if err := dg.Open(); err != nil {
		tb.Fatalf("Open: %v", err)
	}
	if reconnect {
		tb.Cleanup(func() { _ = dg.Close() })
	}
	return dg
}

const allIntents = discordgo.IntentsAllWithoutPrivileged | discordgo.IntentMessageContent | discordgo.IntentGuildMembers

// events subscribes to one discordgo event type.
func events[T any](dg *discordgo.Session) <-chan T {
	ch := make(chan T, 256)
	dg.AddHandler(func(_ *discordgo.Session, e T) { ch <- e })
	return ch
}

func recv[T any](tb testing.TB, ch <-chan T) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		tb.Fatalf("no %T event", *new(T))
	}
	panic("unreachable")
}

// recvWhere receives until pred holds.
func recvWhere[T any](tb testing.TB, ch <-chan T, pred func(T) bool) T {
	tb.Helper()
	for {
		if v := recv(tb, ch); pred(v) {
			return v
		}
	}
}

// restErr asserts err is a discordgo REST error with that status and code.
func restErr(tb testing.TB, err error, status, code int) *discordgo.RESTError {
	tb.Helper()
	var re *discordgo.RESTError
	if !errors.As(err, &re) {
		tb.Fatalf("want a *discordgo.RESTError (HTTP %d, code %d), got %v", status, code, err)
	}
	if re.Response.StatusCode != status {
		tb.Fatalf("status %d, want %d: %s", re.Response.StatusCode, status, re.ResponseBody)
	}
	if re.Message == nil || re.Message.Code != code {
		tb.Fatalf("code: %s, want %d", re.ResponseBody, code)
	}
	return re
}

func must[T any](tb testing.TB) func(T, error) T {
	return func(v T, err error) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}
