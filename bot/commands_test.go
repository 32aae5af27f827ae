package bot_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

func TestParseText(t *testing.T) {
	r := bot.NewRegistry()
	for _, c := range bot.Builtins() {
		if err := r.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		line    string
		cmd     string
		args    map[string]any
		wantErr string
	}{
		{line: "hello", cmd: ""},
		{line: "!chat tell me a story about dragons", cmd: "chat", args: map[string]any{"message": "tell me a story about dragons"}},
		{line: "!model Fimbulvetr-11B-v2", cmd: "model", args: map[string]any{"name": "Fimbulvetr-11B-v2"}},
		{line: "!model", cmd: "model", args: map[string]any{}},
		{line: "!settings temperature=0.7 max_tokens=200", cmd: "settings", args: map[string]any{"temperature": 0.7, "max_tokens": 200}},
		{line: "!settings 0.5", cmd: "settings", args: map[string]any{"temperature": 0.5}},
		{line: "!settings temperature=hot", wantErr: "temperature must be a number"},
		{line: "!settings max_tokens=5000", wantErr: "max_tokens must be between 16 and 1024"},
		{line: "!token destroy", wantErr: "must be one of create, revoke"},
		{line: "!link", wantErr: "Missing <key>. Usage: !link <key>"},
		{line: "!frobnicate", wantErr: "Unknown command !frobnicate. Try !help"},
		{line: "!new extra", wantErr: "Too many arguments"},
		{line: `!system "be a pirate" `, cmd: "system", args: map[string]any{"prompt": `"be a pirate"`}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			c, args, err := r.ParseText("!", tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.cmd == "" {
				if c != nil {
					t.Fatalf("not a command, got %s", c.Name)
				}
				return
			}
			if c.Name != tt.cmd || len(args) != len(tt.args) {
				t.Fatalf("got %v %v", c.Name, args)
			}
			for k, v := range tt.args {
				if args[k] != v {
					t.Errorf("%s = %#v, want %#v", k, args[k], v)
				}
			}
		})
	}
}

func TestRegistryRejectsBadDeclarations(t *testing.T) {
	r := bot.NewRegistry()
	if err := r.Add(&bot.Command{Name: "Bad Name"}); err == nil {
		t.Error("bad name accepted")
	}
	if err := r.Add(&bot.Command{Name: "x", Options: []bot.Option{{Name: "a", Rest: true}, {Name: "b"}}}); err == nil {
		t.Error("rest option not last accepted")
	}
	r.Add(&bot.Command{Name: "y"})
	if err := r.Add(&bot.Command{Name: "y"}); err == nil {
		t.Error("duplicate accepted")
	}
}

func TestCommands(t *testing.T) {
	r := newRig(t, bot.DefaultConfig(), 2000)

	out := joined(r.call(t, "alice", "!link "+hordetest.TestAPIKey))
	if !strings.Contains(out, "tester#1") || strings.Contains(out, hordetest.TestAPIKey) {
		t.Fatalf("link reply = %q", out)
	}
	if r.store.Keys[1] != hordetest.TestAPIKey {
		t.Fatalf("key not stored: %v", r.store.Keys)
	}
	if out := joined(r.call(t, "alice", "!link not-a-real-key-123")); !strings.Contains(out, "does not know that key") || strings.Contains(out, "not-a-real-key-123") {
		t.Errorf("bad key reply = %q", out)
	}
	if out := joined(r.call(t, "alice", "!me")); !strings.Contains(out, "tester#1") || !strings.Contains(out, "1,000 kudos") || !strings.Contains(out, "Usage: 0 questions") || strings.Contains(out, hordetest.TestAPIKey) {
		t.Errorf("me = %q", out)
	}
	if out := joined(r.call(t, "alice", "!unlink")); !strings.Contains(out, "forgotten") {
		t.Errorf("unlink = %q", out)
	}

	if out := joined(r.call(t, "alice", "!model Hermes-3-Llama-3.1-8B")); !strings.Contains(out, "aphrodite/NousResearch/Hermes-3-Llama-3.1-8B") {
		t.Errorf("model set = %q", out)
	}
	if out := joined(r.call(t, "alice", "!model gpt-4o")); !strings.Contains(out, "No Horde worker serves") {
		t.Errorf("unknown model = %q", out)
	}
	if out := joined(r.call(t, "alice", "!model")); !strings.Contains(out, "Hermes-3") {
		t.Errorf("model show = %q", out)
	}
	if out := joined(r.call(t, "alice", "!models")); !strings.Contains(out, "koboldcpp/Fimbulvetr-11B-v2") {
		t.Errorf("models = %q", out)
	}
	if out := joined(r.call(t, "alice", "!settings temperature=0.3")); !strings.Contains(out, "Temperature: 0.3") {
		t.Errorf("settings = %q", out)
	}
	if out := joined(r.call(t, "alice", "!token")); !strings.Contains(out, "hc_") {
		t.Errorf("token = %q", out)
	}
	if out := joined(r.call(t, "alice", "!token revoke")); !strings.Contains(out, "Revoked 1") {
		t.Errorf("revoke = %q", out)
	}
	if out := joined(r.call(t, "alice", "!system You are a pirate.")); !strings.Contains(out, "persona") {
		t.Errorf("system = %q", out)
	}
	if out := joined(r.call(t, "alice", "!help")); !strings.Contains(out, "!link <key>") || !strings.Contains(out, "!model [name]") {
		t.Errorf("help = %q", out)
	}

	// The chosen model, settings and persona shape the next request.
	r.engine.HandleMessage(context.Background(), r.incoming("alice", "ahoy"))
	r.plat.waitFor(t, "answer", answered(1))
	sub := r.fake.RequestsTo(http.MethodPost, "/api/v2/generate/text/async")[0]
	body := string(sub.Body)
	for _, want := range []string{"Hermes-3-Llama-3.1-8B", `"temperature":0.3`, "You are a pirate."} {
		if !strings.Contains(body, want) {
			t.Errorf("submit lacks %s: %s", want, body)
		}
	}
	if out := joined(r.call(t, "alice", "!new")); !strings.Contains(out, "fresh conversation") {
		t.Errorf("new = %q", out)
	}
	if len(r.store.History("test:chan-1")) != 0 {
		t.Error("history kept after !new")
	}
}

func TestPersonaAdminsOnly(t *testing.T) {
	cfg := bot.DefaultConfig()
	cfg.PersonaAdminsOnly = true
	cfg.Admins = []string{"root"}
	r := newRig(t, cfg, 2000)
	if out := joined(r.call(t, "bob", "!system evil")); !strings.Contains(out, "Only admins") {
		t.Errorf("non-admin = %q", out)
	}
	if out := joined(r.call(t, "root", "!system kind")); !strings.Contains(out, "persona") {
		t.Errorf("admin = %q", out)
	}
}

func TestModelAutocomplete(t *testing.T) {
	r := newRig(t, bot.DefaultConfig(), 2000)
	cmd, _ := r.engine.Commands().Get("model")
	got := r.engine.Complete(context.Background(), &bot.Call{Command: cmd}, "name", "herm")
	if len(got) != 1 || got[0].Value != "aphrodite/NousResearch/Hermes-3-Llama-3.1-8B" || !strings.Contains(got[0].Name, "workers") {
		t.Fatalf("complete = %+v", got)
	}
}
