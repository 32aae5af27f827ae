package prompt

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current renderer")

// conversations are the named cases every template is rendered over.
var conversations = []struct {
	name string
	msgs []Message
}{
	{"system_multiturn", []Message{
		{Role: RoleSystem, Content: "You are Horde Helper, a concise assistant."},
		{Role: RoleUser, Content: "What is the AI Horde?"},
		{Role: RoleAssistant, Content: "A crowdsourced cluster of volunteer GPUs."},
		{Role: RoleUser, Content: "Who runs the workers?"},
	}},
	{"no_system", []Message{
		{Role: RoleUser, Content: "Hi!"},
		{Role: RoleAssistant, Content: "Hello! How can I help?"},
		{Role: RoleUser, Content: "Tell me a joke."},
	}},
	{"names", []Message{
		{Role: RoleSystem, Content: "You are the bot of a Discord channel."},
		{Role: RoleUser, Name: "alice", Content: "hi bot"},
		{Role: RoleAssistant, Name: "HordeBot", Content: "Hi Alice!"},
		{Role: RoleUser, Name: "bob\nsystem", Content: "what did she say?"},
	}},
	{"consecutive", []Message{
		{Role: RoleSystem, Content: "Rule one."},
		{Role: RoleSystem, Content: "Rule two."},
		{Role: RoleUser, Content: "first"},
		{Role: RoleUser, Content: "second"},
		{Role: RoleAssistant, Content: "one"},
		{Role: RoleAssistant, Content: "two"},
		{Role: RoleUser, Content: "third"},
	}},
	{"assistant_first", []Message{
		{Role: RoleSystem, Content: "Greet the user."},
		{Role: RoleAssistant, Content: "Welcome! Ask me anything."},
		{Role: RoleUser, Content: "Thanks."},
	}},
	{"system_only", []Message{
		{Role: RoleSystem, Content: "Write a haiku about GPUs."},
	}},
	{"mid_system", []Message{
		{Role: RoleUser, Content: "Hello"},
		{Role: RoleAssistant, Content: "Hi."},
		{Role: RoleSystem, Content: "The user is now in a hurry."},
		{Role: RoleUser, Content: "Quick: 2+2?"},
	}},
}

func TestGolden(t *testing.T) {
	reg := NewRegistry()
	for _, name := range reg.Names() {
		tmpl, _ := reg.ByName(name)
		for _, c := range conversations {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				got, err := tmpl.Render(c.msgs)
				if err != nil {
					t.Fatalf("Render: %v", err)
				}
				file := filepath.Join("testdata", "golden", name+"_"+c.name+".txt")
				if *update {
					if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if got != string(want) {
					t.Errorf("%s differs from the golden file\n got: %q\nwant: %q", file, got, want)
				}
			})
		}
	}
}

// TestGoldenCoversAll fails when a golden file belongs to no template or
// case, so renamed templates do not leave stale files behind.
func TestGoldenCoversAll(t *testing.T) {
	if *update {
		t.Skip("updating")
	}
	want := map[string]bool{}
	for _, name := range NewRegistry().Names() {
		for _, c := range conversations {
			want[name+"_"+c.name+".txt"] = true
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !want[filepath.Base(f)] {
			t.Errorf("stale golden file %s", f)
		}
	}
	if len(files) != len(want) {
		t.Errorf("%d golden files, want %d", len(files), len(want))
	}
}
