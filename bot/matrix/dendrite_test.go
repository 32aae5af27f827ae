package matrix_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bot/bottest"
	"github.com/hordechat/hordechat/bot/matrix"
	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// dendriteEnv names the directory holding the dendrite, generate-config,
// generate-keys and create-account binaries (make dendrite builds them
// into .cache/bin).
const dendriteEnv = "HORDECHAT_DENDRITE"

// dendriteTimeout bounds the whole integration test (start-up included);
// no assertion is on time.
const dendriteTimeout = 3 * time.Minute

// dendriteBins returns the paths of the Dendrite binaries, or skips.
func dendriteBins(t *testing.T) map[string]string {
	t.Helper()
	const how = "set " + dendriteEnv + " to a directory with dendrite binaries; run make test-matrix-integration"
	dir := os.Getenv(dendriteEnv)
	if dir == "" {
		t.Skip(dendriteEnv + " is not set: " + how)
	}
	bins := map[string]string{}
	for _, name := range []string{"dendrite", "generate-config", "generate-keys", "create-account"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			t.Skipf("%s is missing from %s=%s: %s", name, dendriteEnv, dir, how)
		}
		bins[name] = p
	}
	return bins
}

// freePort picks a free loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// dendrite is a real homeserver run as a subprocess on loopback.
type dendrite struct {
	url  string
	bins map[string]string
	dir  string
	cfg  string
	logs *logBuffer
}

func runTool(t *testing.T, dir, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// startDendrite configures a homeserver named localhost in a temporary
// directory (SQLite, in-memory JetStream, federation off, registration
// only with the shared secret), starts it and waits until it answers.
func startDendrite(t *testing.T, ctx context.Context) *dendrite {
	t.Helper()
	d := &dendrite{bins: dendriteBins(t), dir: t.TempDir(), logs: &logBuffer{}}
	conf := string(runTool(t, d.dir, d.bins["generate-config"], "-ci", "-server", "localhost", "-dir", d.dir))
	for _, r := range []struct{ old, new string }{
		{"disable_federation: false", "disable_federation: true"},
		{"registration_disabled: false", "registration_disabled: true"},
		{"level: trace", "level: info"},
	} {
		if !strings.Contains(conf, r.old) {
			t.Fatalf("generated dendrite config has no %q", r.old)
		}
		conf = strings.Replace(conf, r.old, r.new, 1)
	}
	if !strings.Contains(conf, "registration_shared_secret: complement") {
		t.Fatal("generated dendrite config has no registration shared secret")
	}
	d.cfg = filepath.Join(d.dir, "dendrite.yaml")
	if err := os.WriteFile(d.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, d.dir, d.bins["generate-keys"], "-private-key", "matrix_key.pem")

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d.url = "http://" + addr
	cmd := exec.Command(d.bins["dendrite"], "-config", d.cfg, "-http-bind-address", addr)
	cmd.Dir = d.dir
	cmd.Stdout, cmd.Stderr = d.logs, d.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("dendrite log:\n%s", d.logs.String())
		}
	})

	// An external process: poll until it answers, bounded by ctx.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.url+"/_matrix/client/versions", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("dendrite exited before it answered: %v\n%s", err, d.logs.String())
		case <-ctx.Done():
			t.Fatalf("dendrite did not answer on %s: %v\n%s", d.url, ctx.Err(), d.logs.String())
		case <-tick.C:
		}
	}
}

// account creates a user with the create-account tool (shared-secret
// registration) and returns its full id.
func (d *dendrite) account(t *testing.T, localpart, password string) id.UserID {
	t.Helper()
	runTool(t, d.dir, d.bins["create-account"], "-config", d.cfg, "-url", d.url, "-username", localpart, "-password", password)
	return id.NewUserID(localpart, "localhost")
}

// dendriteUser is a plain mautrix client with its own sync position.
type dendriteUser struct {
	t     *testing.T
	cli   *mautrix.Client
	since string
}

func (d *dendrite) login(t *testing.T, ctx context.Context, user id.UserID, password string) *dendriteUser {
	t.Helper()
	cli, err := mautrix.NewClient(d.url, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Login(ctx, &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: user.String()},
		Password:         password,
		StoreCredentials: true,
	}); err != nil {
		t.Fatalf("login as %s: %v", user, err)
	}
	u := &dendriteUser{t: t, cli: cli}
	resp, err := cli.SyncRequest(ctx, 0, "", "", false, event.PresenceOffline)
	if err != nil {
		t.Fatal(err)
	}
	u.since = resp.NextBatch
	return u
}

// waitEvent long-polls sync until an event in room matches, or ctx ends.
func (u *dendriteUser) waitEvent(ctx context.Context, room id.RoomID, what string, match func(*event.Event) bool) *event.Event {
	u.t.Helper()
	for {
		resp, err := u.cli.SyncRequest(ctx, 10000, u.since, "", false, event.PresenceOffline)
		if err != nil {
			if ctx.Err() != nil {
				u.t.Fatalf("waiting for %s: %v", what, ctx.Err())
			}
			u.t.Fatalf("sync while waiting for %s: %v", what, err)
		}
		u.since = resp.NextBatch
		if r, ok := resp.Rooms.Join[room]; ok {
			for _, evt := range append(r.State.Events, r.Timeline.Events...) {
				_ = evt.Content.ParseRaw(evt.Type)
				if match(evt) {
					return evt
				}
			}
		}
	}
}

// TestDendriteInviteAndDirectMessage runs the real adapter against a real
// homeserver: alice invites the bot, it joins, and it answers her in the
// direct chat.
func TestDendriteInviteAndDirectMessage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), dendriteTimeout)
	defer cancel()
	hs := startDendrite(t, ctx)
	botID := hs.account(t, "hordechat", "bot-password-1")
	aliceID := hs.account(t, "alice", "alice-password-1")
	al := hs.login(t, ctx, aliceID, "alice-password-1")

	logs := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("hordechat log:\n%s", logs.String())
		}
	})
	w := &bottest.World{
		Horde: bridgetest.FastHorde(t, hordetest.WithResponder(replyNumber)), Journal: bridgetest.NewMemStore(), Store: bottest.NewMemStore(),
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), BotCfg: bot.DefaultConfig(), BridgeCfg: bridge.DefaultConfig(),
	}
	w.BotCfg.UserRate = 0
	w.BotCfg.MaxProgressEdits = 0
	mcfg := matrix.DefaultConfig()
	mcfg.Homeserver = hs.url
	mcfg.UserID = botID.String()
	mcfg.Password = "bot-password-1"
	mcfg.SessionFile = filepath.Join(t.TempDir(), "matrix-session.json")
	p := w.Start(t, func(e *bot.Engine) (bottest.Adapter, error) {
		return matrix.New(mcfg, e, w.Log, matrix.WithSyncTimeout(5*time.Second))
	})
	defer p.Stop()

	created, err := al.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "trusted_private_chat", Invite: []id.UserID{botID}, IsDirect: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	room := created.RoomID
	al.waitEvent(ctx, room, "the bot to join", func(e *event.Event) bool {
		return e.Type == event.StateMember && e.GetStateKey() == botID.String() &&
			e.Content.AsMember().Membership == event.MembershipJoin
	})

	q, err := al.cli.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{
		"msgtype": "m.text", "body": "hordechat: what is a horde?",
		"m.mentions": map[string]any{"user_ids": []string{botID.String()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	placeholder := al.waitEvent(ctx, room, "the bot's notice", func(e *event.Event) bool {
		return e.Type == event.EventMessage && e.Sender == botID
	})
	if m := placeholder.Content.AsMessage(); m.MsgType != event.MsgNotice {
		t.Errorf("the bot answered %s with %s %q, want a notice", q.EventID, m.MsgType, m.Body)
	}
	final := placeholder
	if m := placeholder.Content.AsMessage(); m.NewContent == nil && strings.Contains(m.Body, "Asking the Horde") {
		final = al.waitEvent(ctx, room, "the answer", func(e *event.Event) bool {
			m := e.Content.AsMessage()
			return e.Type == event.EventMessage && e.Sender == botID && m != nil && !strings.Contains(m.Body, "Asking the Horde")
		})
	}
	m := final.Content.AsMessage()
	body := m.Body
	if m.NewContent != nil {
		body = m.NewContent.Body
		if rel := m.RelatesTo; rel == nil || rel.Type != event.RelReplace || rel.EventID != placeholder.ID {
			t.Errorf("the answer relates to %+v, want an edit of the notice %s", rel, placeholder.ID)
		}
	}
	if !strings.HasPrefix(body, "Reply number 1") {
		t.Errorf("the bot's answer is %q, want it to start with %q", body, "Reply number 1")
	}
	p.Stop()
	if hist := w.Store.History("matrix:" + room.String()); len(hist) != 2 {
		t.Errorf("history of the DM has %d messages, want 2", len(hist))
	}
}
