package matrix

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/hordechat/hordechat/bot"
)

func TestRenderMarkdown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"escapes html", `<script>alert(1)</script> & co`, `&lt;script&gt;alert(1)&lt;/script&gt; &amp; co`},
		{"bold and italics", "**bold** and *it*", "<strong>bold</strong> and <em>it</em>"},
		{"inline code is literal", "use `**x** <b>`", "use <code>**x** &lt;b&gt;</code>"},
		{"fence", "a\n```go\nx := <-ch\n```\nb", `a<br><pre><code class="language-go">x := &lt;-ch` + "\n" + `</code></pre>b`},
		{"unclosed fence", "```\ncode", "<pre><code>code\n</code></pre>"},
		{"link", "[docs](https://aihorde.net/api)", `<a href="https://aihorde.net/api">docs</a>`},
		{"no javascript links", "[x](javascript:alert(1))", "[x](javascript:alert(1))"},
		{"note", "answer\n-# model · note", "answer<br><sub>model · note</sub>"},
		{"heading", "## Title\ntext", "<h2>Title</h2>text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := renderMarkdown(tc.in); got != tc.want {
				t.Errorf("renderMarkdown(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestContentIsNoticeWithoutMentions(t *testing.T) {
	t.Parallel()
	c := content(botOut("plain"))
	if c.MsgType != "m.notice" || c.Mentions == nil || len(c.Mentions.UserIDs) != 0 || c.Mentions.Room || c.FormattedBody != "" {
		t.Errorf("content = %+v", c)
	}
	c = content(botOut(strings.Repeat("<", 40000)))
	fit(c)
	if c.FormattedBody != "" {
		t.Error("an oversized formatted_body was kept")
	}
}

func TestInviteRefusal(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.UserID = "@bot:home.test"
	for _, tc := range []struct {
		name    string
		servers []string
		users   []string
		inviter string
		ok      bool
	}{
		{"own server by default", nil, nil, "@a:home.test", true},
		{"other server by default", nil, nil, "@a:else.test", false},
		{"listed server", []string{"else.test"}, nil, "@a:else.test", true},
		{"any server", []string{"*"}, nil, "@a:else.test", true},
		{"listed user", []string{"*"}, []string{"@a:else.test"}, "@a:else.test", true},
		{"unlisted user", []string{"*"}, []string{"@a:else.test"}, "@b:else.test", false},
		{"listed user on a refused server", []string{"home.test"}, []string{"@a:else.test"}, "@a:else.test", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.InviteServers, c.InviteUsers = tc.servers, tc.users
			a := &Adapter{cfg: c, server: "home.test"}
			if got := a.inviteRefusal(id.UserID(tc.inviter)) == ""; got != tc.ok {
				t.Errorf("allowed = %v, want %v", got, tc.ok)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := DefaultConfig()
	good.Homeserver, good.UserID, good.AccessToken = "https://matrix.example", "@bot:example", "tok"
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("the defaults (off) do not validate: %v", err)
	}
	for _, tc := range []struct {
		key    string
		change func(*Config)
	}{
		{"matrix.homeserver", func(c *Config) { c.Homeserver = "matrix.example" }},
		{"matrix.user_id", func(c *Config) { c.UserID = "bot" }},
		{"matrix.command_prefix", func(c *Config) { c.CommandPrefix = "" }},
		{"matrix.invite_servers", func(c *Config) { c.InviteServers = []string{"@x"} }},
		{"matrix.invite_users", func(c *Config) { c.InviteUsers = []string{"x"} }},
		{"matrix.max_edits", func(c *Config) { c.MaxEdits = -1 }},
		{"matrix.workers", func(c *Config) { c.Workers = 0 }},
	} {
		c := good
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %v does not name the key", tc.key, err)
		}
	}
}

func botOut(s string) bot.Outgoing { return bot.Outgoing{Text: s} }
