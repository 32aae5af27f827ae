package openai

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// TestStatusPageInBrowser loads the status page in headless Chromium,
// driven over the DevTools protocol on a pipe (no WebSocket needed): the
// page must render, pick up live numbers from /status.json, and log no
// console error, exception or failed load. A second page proves the
// harness notices such problems. It does not run in parallel with the
// other tests: a browser starved of CPU is slow to start.
func TestStatusPageInBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("skipping the browser test: %s not found (install Debian's chromium package: apt-get install -y chromium)", chromiumPath)
	}
	b := startBrowser(t)
	t.Run("status page", func(t *testing.T) { checkStatusPage(t, b) })
	t.Run("harness sees errors", func(t *testing.T) { checkHarnessSeesErrors(t, b) })
}

func checkStatusPage(t *testing.T, b *browser) {
	h := newHarness(t, harnessOpts{})
	page := b.open(t, h.ts.URL+"/?refresh=100")

	first := page.eval(t, `waitFor(() => document.body.dataset.loaded === "1", () => ({
		served: document.getElementById("served").textContent,
		inflight: document.getElementById("inflight").textContent,
		uptime: document.getElementById("uptime").textContent,
		models: Array.from(document.querySelectorAll("#models tr td:first-child")).map(td => td.textContent),
		base: document.getElementById("base").textContent,
		title: document.title,
	}))`)
	var st struct {
		Served, Inflight, Uptime, Base, Title string
		Models                                []string
	}
	if err := json.Unmarshal(first, &st); err != nil {
		t.Fatalf("%v: %s", err, first)
	}
	if st.Served != "0" || st.Inflight != "0" || st.Uptime == "–" || st.Base != h.ts.URL+"/v1" || !strings.Contains(st.Title, "hordechat") {
		t.Errorf("first render = %+v", st)
	}
	if !strings.Contains(strings.Join(st.Models, ","), modelHermes) {
		t.Errorf("models table = %v", st.Models)
	}

	// Serve one request; the page must show it without a reload.
	if resp, raw := h.do(http.MethodPost, "/v1/chat/completions", userKey, chatBody("default", "Hi")); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	served := page.eval(t, `waitFor(() => document.getElementById("served").textContent === "1", () => document.getElementById("served").textContent)`)
	if string(served) != `"1"` {
		t.Errorf("served after a request = %s", served)
	}
	if problems := page.problems(); len(problems) > 0 {
		t.Errorf("the page logged problems:\n%s", strings.Join(problems, "\n"))
	}
}

func checkHarnessSeesErrors(t *testing.T, b *browser) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><link rel="icon" href="data:,"><script>console.error("boom"); fetch("missing.json"); setTimeout(() => { document.body.dataset.loaded = "1"; undefinedFunction(); }, 50);</script>`)
	}))
	defer ts.Close()
	page := b.open(t, ts.URL+"/")
	page.eval(t, `waitFor(() => document.body && document.body.dataset.loaded === "1", () => true)`)
	page.eval(t, `new Promise(r => setTimeout(() => r(true), 200))`) // let the exception and the 404 be reported
	all := strings.Join(page.problems(), "\n")
	for _, want := range []string{"boom", "undefinedFunction", "404"} {
		if !strings.Contains(all, want) {
			t.Errorf("the harness missed %q; it saw:\n%s", want, all)
		}
	}
}

// browser is headless Chromium driven over --remote-debugging-pipe:
// commands go to its fd 3, answers and events come from its fd 4, each a
// JSON message ended by a NUL byte.
type browser struct {
	cmd *exec.Cmd
	in  *os.File
	out *bufio.Reader

	mu       sync.Mutex
	nextID   int
	pending  map[int]chan cdpMessage
	waiters  map[string][]chan struct{} // by method + " " + session
	issues   map[string][]string        // by session
	readDone chan struct{}
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	cmdR, cmdW, err := os.Pipe() // we write commands, Chromium reads fd 3
	if err != nil {
		t.Fatal(err)
	}
	evR, evW, err := os.Pipe() // Chromium writes fd 4, we read
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chromiumPath,
		"--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--no-default-browser-check", "--disable-extensions", "--mute-audio", "--renderer-process-limit=2",
		"--user-data-dir="+t.TempDir(), "about:blank")
	cmd.ExtraFiles = []*os.File{cmdR, evW}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmdR.Close()
	evW.Close()
	b := &browser{cmd: cmd, in: cmdW, out: bufio.NewReader(evR), pending: map[int]chan cdpMessage{}, waiters: map[string][]chan struct{}{}, issues: map[string][]string{}, readDone: make(chan struct{})}
	go b.read()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = b.call(ctx, "", "Browser.close", nil)
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		cmdW.Close()
		<-b.readDone
		evR.Close()
	})
	return b
}

func (b *browser) read() {
	defer close(b.readDone)
	for {
		raw, err := b.out.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.pending[m.ID]; ok {
				ch <- m
				delete(b.pending, m.ID)
			}
		} else {
			if issue := cdpIssue(m); issue != "" {
				b.issues[m.SessionID] = append(b.issues[m.SessionID], issue)
			}
			key := m.Method + " " + m.SessionID
			for _, ch := range b.waiters[key] {
				close(ch)
			}
			delete(b.waiters, key)
		}
		b.mu.Unlock()
	}
}

// cdpIssue describes an event that means the page misbehaved.
func cdpIssue(m cdpMessage) string {
	switch m.Method {
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		_ = json.Unmarshal(m.Params, &p)
		if p.Type == "error" || p.Type == "warning" || p.Type == "assert" {
			parts := []string{"console." + p.Type + ":"}
			for _, a := range p.Args {
				parts = append(parts, fmt.Sprint(a.Value, a.Description))
			}
			return strings.Join(parts, " ")
		}
	case "Runtime.exceptionThrown":
		var p struct {
			ExceptionDetails struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		_ = json.Unmarshal(m.Params, &p)
		return "exception: " + p.ExceptionDetails.Text + " " + p.ExceptionDetails.Exception.Description
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Level  string `json:"level"`
				Source string `json:"source"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		_ = json.Unmarshal(m.Params, &p)
		if p.Entry.Level == "error" || p.Entry.Level == "warning" {
			return "log " + p.Entry.Level + " (" + p.Entry.Source + "): " + p.Entry.Text + " " + p.Entry.URL
		}
	}
	return ""
}

// event returns a channel closed when the next event method arrives on
// session.
func (b *browser) event(method, session string) <-chan struct{} {
	ch := make(chan struct{})
	b.mu.Lock()
	defer b.mu.Unlock()
	key := method + " " + session
	b.waiters[key] = append(b.waiters[key], ch)
	return ch
}

// problems are the page's console errors, exceptions and failed loads.
func (p *tab) problems() []string {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	return append([]string(nil), p.b.issues[p.session]...)
}

func (b *browser) call(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if session != "" {
		msg["sessionId"] = session
	}
	if params != nil {
		msg["params"] = params
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	if _, err := b.in.Write(append(raw, 0)); err != nil {
		return nil, fmt.Errorf("send %s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, errors.New("the browser went away")
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		return m.Result, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// tab is one page with its DevTools session.
type tab struct {
	b       *browser
	session string
}

func (b *browser) open(t *testing.T, url string) *tab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"})
	if err != nil {
		t.Fatal(err)
	}
	var target struct {
		TargetID string `json:"targetId"`
	}
	_ = json.Unmarshal(res, &target)
	res, err = b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true})
	if err != nil {
		t.Fatal(err)
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	_ = json.Unmarshal(res, &att)
	p := &tab{b: b, session: att.SessionID}
	for _, m := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		if _, err := b.call(ctx, p.session, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	loaded := b.event("Page.loadEventFired", p.session)
	if _, err := b.call(ctx, p.session, "Page.navigate", map[string]any{"url": url}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-loaded:
	case <-ctx.Done():
		t.Fatal("the page did not load in 90 s")
	}
	return p
}

// waitForJS defines waitFor(cond, value): a promise of value() once cond()
// holds, checked on animation frames, rejected after 15 s.
const waitForJS = `function waitFor(cond, value) {
	return new Promise((resolve, reject) => {
		const deadline = Date.now() + 15000;
		const check = () => {
			try { if (cond()) { resolve(value()); return; } } catch (e) { reject(e); return; }
			if (Date.now() > deadline) { reject(new Error("condition not met in 15 s")); return; }
			setTimeout(check, 20);
		};
		check();
	});
}`

// eval runs a promise expression in the page and returns its JSON value.
func (p *tab) eval(t *testing.T, expr string) json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := p.b.call(ctx, p.session, "Runtime.evaluate", map[string]any{
		"expression":    "(() => {\n" + waitForJS + "\nreturn " + expr + ";\n})()",
		"awaitPromise":  true,
		"returnByValue": true,
	})
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatal(err)
	}
	if r.ExceptionDetails != nil {
		t.Fatalf("evaluate: %s %s", r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	return r.Result.Value
}
