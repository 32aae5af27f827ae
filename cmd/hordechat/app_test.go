package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	oai "github.com/openai/openai-go"
	"github.com/openai/openai-go/option"

	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testEnv points the whole app at a temp dir, a free port and an address
// that answers nothing, so no test can reach the internet.
func testEnv(t *testing.T, extra ...string) []string {
	dir := t.TempDir()
	return append([]string{
		"HORDECHAT_STORAGE__PATH=" + filepath.Join(dir, "data", "hordechat.db"),
		"HORDECHAT_HTTP__LISTEN=127.0.0.1:0",
		"HORDECHAT_HORDE__BASE_URL=http://127.0.0.1:9/api",
	}, extra...)
}

type running struct {
	app    *App
	addr   net.Addr
	cancel context.CancelFunc
	code   chan int
	stdout *syncBuffer
	stderr *syncBuffer
}

func startRun(t *testing.T, env []string) *running {
	t.Helper()
	return startRunWith(t, env, nil)
}

// startRunWith is startRun with a hook that sees the App before it serves.
func startRunWith(t *testing.T, env []string, hook func(*App)) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, code: make(chan int, 1), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	ready := make(chan net.Addr, 1)
	go func() {
		r.code <- run(ctx, nil, env, r.stdout, r.stderr, func(a *App) {
			r.app = a
			a.onReady = func(addr net.Addr) { ready <- addr }
			if hook != nil {
				hook(a)
			}
		})
	}()
	select {
	case r.addr = <-ready:
	case code := <-r.code:
		cancel()
		t.Fatalf("run exited with %d before ready:\n%s", code, r.stderr.String())
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	code, ok := <-r.code
	if ok {
		close(r.code)
		if code != 0 {
			t.Errorf("run exited with %d:\n%s", code, r.stderr.String())
		}
	}
	return code
}

func TestRunServesHealthzAndStopsCleanly(t *testing.T) {
	const opKey = "operator-secret-key-123"
	r := startRun(t, testEnv(t, "HORDECHAT_HORDE__API_KEY="+opKey, "HORDECHAT_LOG__FORMAT=json"))
	resp, err := http.Get("http://" + r.addr.String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status  string `json:"status"`
		Version string `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || body.Status != "ok" || body.Version == "" {
		t.Errorf("healthz = %d %+v", resp.StatusCode, body)
	}
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	logs := r.stderr.String()
	for _, want := range []string{`"msg":"discord is off"`, "HORDECHAT_DISCORD__TOKEN", `"msg":"matrix is off"`, "matrix.homeserver", `"msg":"ready"`, `"msg":"stopped"`, "operator key (horde.api_key)"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, opKey) {
		t.Errorf("logs leak the operator key:\n%s", logs)
	}
}

// A second start on the same data directory reuses the generated key file.
func TestRunRestartsOnSameData(t *testing.T) {
	env := testEnv(t)
	startRun(t, env).stop(t)
	startRun(t, env).stop(t)
}

func TestRunRejectsBadConfig(t *testing.T) {
	var stderr bytes.Buffer
	code := run(context.Background(), nil, []string{"HORDECHAT_LOG__LEVEL=chatty"}, &bytes.Buffer{}, &stderr, nil)
	if code != 1 || !strings.Contains(stderr.String(), "log.level") {
		t.Fatalf("code=%d stderr=%s", code, stderr.String())
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        []string
		wantCode   int
		wantStdout []string
		wantStderr []string
		leak       string
	}{
		{name: "version", args: []string{"version"}, wantStdout: []string{"hordechat "}},
		{name: "help", args: []string{"help"}, wantStdout: []string{"check-config"}},
		{name: "unknown command", args: []string{"serve"}, wantCode: 2, wantStderr: []string{`unknown command "serve"`, "Usage"}},
		{name: "stray argument", args: []string{"version", "x"}, wantCode: 2, wantStderr: []string{`unexpected argument "x"`}},
		{name: "bad flag", args: []string{"run", "--nope"}, wantCode: 2, wantStderr: []string{"nope"}},
		{name: "check-config hides secrets", args: []string{"check-config"}, env: []string{"HORDECHAT_HORDE__API_KEY=hidden-key-999"},
			wantStdout: []string{"configuration is valid", "horde.api_key = (set)", "discord.token = (unset)"}, leak: "hidden-key-999"},
		{name: "check-config reports errors", args: []string{"check-config", "--config", "/nonexistent.toml"}, wantCode: 1, wantStderr: []string{"/nonexistent.toml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir()) // no stray ./config.toml
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, tt.env, &stdout, &stderr, nil)
			if code != tt.wantCode {
				t.Fatalf("code = %d, want %d; stderr=%s", code, tt.wantCode, stderr.String())
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if tt.leak != "" && strings.Contains(stdout.String()+stderr.String(), tt.leak) {
				t.Errorf("output leaks %q", tt.leak)
			}
		})
	}
}

// The whole binary's run against the fake Horde: it loads the models with
// its own Client-Agent and reports them on /healthz.
func TestRunAgainstFakeHorde(t *testing.T) {
	fake := hordetest.New(t)
	r := startRun(t, testEnv(t, "HORDECHAT_HORDE__BASE_URL="+fake.URL, "HORDECHAT_HORDE__CONTACT=ops@example.org"))
	app, addr, ctx := r.app, r.addr, context.Background()
	if err := app.bridge.RefreshModels(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Models int  `json:"models"`
		Stale  bool `json:"models_stale"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if body.Models != len(hordetest.DefaultWorkers()) || body.Stale {
		t.Errorf("healthz models = %+v", body)
	}
	calls := fake.RequestsTo(http.MethodGet, "/api/v2/status/models")
	if len(calls) == 0 || calls[0].Header.Get("Client-Agent") != "hordechat:"+version()+":ops@example.org" {
		t.Fatalf("model calls = %d, agent %q", len(calls), calls[0].Header.Get("Client-Agent"))
	}
}

// The whole binary serves /v1 to the official OpenAI SDK: a personal token
// made in storage runs as its chat user, with that user's Horde identity.
func TestRunServesV1(t *testing.T) {
	fake := bridgetest.FastHorde(t)
	r := startRun(t, testEnv(t, "HORDECHAT_HORDE__BASE_URL="+fake.URL, "HORDECHAT_HORDE__PROXY_PASSKEY="+bridgetest.Passkey))
	app, addr, ctx := r.app, r.addr, context.Background()
	if err := app.bridge.RefreshModels(ctx); err != nil {
		t.Fatal(err)
	}
	user, err := app.store.UpsertUser(ctx, "discord", "4242", "Tester")
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := app.store.CreateAPIToken(ctx, user.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	client := oai.NewClient(option.WithBaseURL("http://"+addr.String()+"/v1/"), option.WithAPIKey(token))
	resp, err := client.Chat.Completions.New(ctx, oai.ChatCompletionNewParams{
		Model:    "Fimbulvetr-11B-v2",
		Messages: []oai.ChatCompletionMessageParamUnion{oai.UserMessage("Hello from the SDK")},
	})
	if err != nil {
		t.Fatalf("chat completion: %v\n%s", err, r.stderr.String())
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" || resp.Model != "koboldcpp/Fimbulvetr-11B-v2" {
		t.Fatalf("response = %+v", resp)
	}
	subs := fake.RequestsTo(http.MethodPost, "/api/v2/generate/text/async")
	if len(subs) != 1 || !subs[0].Proxied || !strings.HasPrefix(subs[0].Identity, "fd") {
		t.Fatalf("the Horde did not see the chat user's pseudo-address: %+v", subs)
	}
	wrong := oai.NewClient(option.WithBaseURL("http://"+addr.String()+"/v1/"), option.WithAPIKey("hc_wrong"), option.WithMaxRetries(0))
	if _, err := wrong.Chat.Completions.New(ctx, oai.ChatCompletionNewParams{Model: "default", Messages: []oai.ChatCompletionMessageParamUnion{oai.UserMessage("x")}}); err == nil {
		t.Error("a wrong token was accepted")
	}
	r.stop(t)
	if strings.Contains(r.stderr.String(), token) {
		t.Error("the token appears in the logs")
	}
}

func TestOpencodeCommand(t *testing.T) {
	fake := hordetest.New(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"opencode", "--base-url", "https://horde.example.org"}, []string{"HORDECHAT_HORDE__BASE_URL=" + fake.URL}, &stdout, &stderr, nil)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var cfg struct {
		Provider map[string]struct {
			Options struct {
				BaseURL string `json:"baseURL"`
			} `json:"options"`
			Models map[string]struct {
				Limit struct{ Context, Output int } `json:"limit"`
			} `json:"models"`
		} `json:"provider"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &cfg); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	p := cfg.Provider["hordechat"]
	m, ok := p.Models["koboldcpp/Fimbulvetr-11B-v2"]
	if p.Options.BaseURL != "https://horde.example.org/v1" || !ok || m.Limit.Context != 8192 || m.Limit.Output != 512 {
		t.Fatalf("opencode.json = %s", stdout.String())
	}
}
