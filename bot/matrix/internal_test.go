package matrix

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
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

func TestRetryDelayBacksOffHonoursRateLimitsAndCaps(t *testing.T) {
	t.Parallel()
	low := retry{min: time.Second, max: time.Minute, jitter: func() float64 { return 0 }}
	high := low
	high.jitter = func() float64 { return 0.999999 }
	for _, tc := range []struct {
		name       string
		failures   int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{"first failure", 1, 0, 500 * time.Millisecond, time.Second},
		{"doubles", 3, 0, 2 * time.Second, 4 * time.Second},
		{"capped", 7, 0, 30 * time.Second, time.Minute},
		{"a long outage stays capped", 10000, 0, 30 * time.Second, time.Minute},
		{"a rate limit's wait is honoured", 1, 7 * time.Second, 7 * time.Second, 7 * time.Second},
		{"a shorter rate limit does not shorten the backoff", 7, time.Second, 30 * time.Second, time.Minute},
		{"a bogus rate limit is bounded", 1, 48 * time.Hour, maxRetryAfter, maxRetryAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := low.delay(tc.failures, tc.retryAfter); d != tc.lo {
				t.Errorf("with the least jitter: %v, want %v", d, tc.lo)
			}
			if d := high.delay(tc.failures, tc.retryAfter); d < tc.lo || d > tc.hi || (tc.lo != tc.hi && d <= tc.lo) {
				t.Errorf("with the most jitter: %v, want in (%v, %v]", d, tc.lo, tc.hi)
			}
		})
	}
	if d := defaultRetry(); d.min != time.Second || d.max != time.Minute {
		t.Errorf("production backoff %v to %v, want 1s to 1m", d.min, d.max)
	}
}

func TestTransientErrors(t *testing.T) {
	t.Parallel()
	status := func(code int, resp *mautrix.RespError, header http.Header) error {
		return fmt.Errorf("matrix whoami: %w", mautrix.HTTPError{Response: &http.Response{StatusCode: code, Header: header}, RespError: resp})
	}
	for _, tc := range []struct {
		name  string
		err   error
		ok    bool
		after time.Duration
	}{
		{"no answer", mautrix.HTTPError{Message: "request error", WrappedError: errors.New("connection refused")}, true, 0},
		{"bad gateway", status(502, nil, http.Header{}), true, 0},
		{"internal error", status(500, &mautrix.RespError{ErrCode: "M_UNKNOWN"}, http.Header{}), true, 0},
		{"rate limited", status(429, &mautrix.RespError{ErrCode: "M_LIMIT_EXCEEDED", ExtraData: map[string]any{"retry_after_ms": 2500.0}}, http.Header{}), true, 2500 * time.Millisecond},
		{"rate limited by header", status(429, nil, http.Header{"Retry-After": {"3"}}), true, 3 * time.Second},
		{"wrong password", status(403, &mautrix.RespError{ErrCode: "M_FORBIDDEN"}, http.Header{}), false, 0},
		{"revoked token", status(401, &mautrix.RespError{ErrCode: "M_UNKNOWN_TOKEN"}, http.Header{}), false, 0},
		{"not from the homeserver", errors.New("matrix: the access token belongs to @x:y"), false, 0},
	} {
		after, ok := transient(tc.err)
		if ok != tc.ok || after != tc.after {
			t.Errorf("%s: transient = %v, %v; want %v, %v", tc.name, after, ok, tc.after, tc.ok)
		}
	}
}
