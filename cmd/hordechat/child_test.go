package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv marks the test binary re-executed as the hordechat binary. It
// has no HORDECHAT_ prefix: the strict config would refuse it as a key.
const childEnv = "HCTEST_RUN_AS_HORDECHAT"

// TestMain lets a test start this test binary as a real hordechat process,
// which it can kill -9 and whose memory it can measure on its own.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// child is hordechat running as a separate process.
type child struct {
	t      testing.TB
	cmd    *exec.Cmd
	addr   string // host:port of the HTTP listener
	stderr *syncBuffer
	exited chan struct{} // closed when the process has exited
	state  *os.ProcessState
}

// childReadyTimeout guards against a hang only; no test asserts on time.
const childReadyTimeout = 2 * time.Minute

// startChild runs `hordechat run` in a new process with env (HORDECHAT_
// variables of the test's own environment are dropped, so CI's settings
// cannot leak in) and JSON logs, and waits until it logs "ready". The
// process is killed when the test ends if it still runs.
func startChild(t testing.TB, env []string) *child {
	t.Helper()
	c := &child{t: t, stderr: &syncBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "run")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HORDECHAT_") && !strings.HasPrefix(kv, childEnv+"=") {
			c.cmd.Env = append(c.cmd.Env, kv)
		}
	}
	c.cmd.Env = append(c.cmd.Env, env...)
	c.cmd.Env = append(c.cmd.Env, childEnv+"=1", "HORDECHAT_LOG__FORMAT=json")
	pipe, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go c.readLog(pipe, ready)
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.exited
	})
	select {
	case c.addr = <-ready:
	case <-c.exited:
		t.Fatalf("hordechat exited before ready (%v):\n%s", c.state, c.stderr.String())
	case <-time.After(childReadyTimeout):
		t.Fatalf("hordechat not ready:\n%s", c.stderr.String())
	}
	return c
}

// readLog copies the child's log into c.stderr, reports the listen address
// of the "ready" line, and reaps the process at EOF.
func (c *child) readLog(r io.Reader, ready chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	sent := false
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = c.stderr.Write(append(line, '\n'))
		if sent || !strings.Contains(string(line), `"msg":"ready"`) {
			continue
		}
		var rec struct {
			HTTP string `json:"http"`
		}
		if json.Unmarshal(line, &rec) == nil {
			ready <- strings.TrimPrefix(rec.HTTP, "http://")
			sent = true
		}
	}
	_, _ = io.Copy(c.stderr, r)
	_ = c.cmd.Wait()
	c.state = c.cmd.ProcessState
	close(c.exited)
}

// url is the child's base URL.
func (c *child) url() string { return "http://" + c.addr }

// kill9 kills the process with SIGKILL, as a crash or the OOM killer
// would, and waits until it is gone.
func (c *child) kill9() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Fatal(err)
	}
	<-c.exited
}

// stop sends SIGTERM and waits for a clean exit.
func (c *child) stop() {
	c.t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(childReadyTimeout):
		c.t.Fatalf("hordechat did not stop on SIGTERM:\n%s", c.stderr.String())
	}
	if code := c.state.ExitCode(); code != 0 {
		c.t.Errorf("hordechat exited with %d:\n%s", code, c.stderr.String())
	}
}

// memory reads the child's resident set size now and its peak, in bytes,
// from /proc.
func (c *child) memory() (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = kb * 1024
		case "VmHWM":
			peak = kb * 1024
		}
	}
	return rss, peak, nil
}

// metric reads one unlabelled sample from the child's /metrics.
func (c *child) metric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url()+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		name0, value, ok := strings.Cut(sc.Text(), " ")
		if ok && name0 == name {
			return strconv.ParseFloat(strings.TrimSpace(value), 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

// TestChildProcessHarness checks the harness itself: the child serves,
// reports its memory and metrics, and dies on SIGKILL without a clean stop.
func TestChildProcessHarness(t *testing.T) {
	c := startChild(t, testEnv(t))
	resp, err := http.Get(c.url() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %d", resp.StatusCode)
	}
	if rss, peak, err := c.memory(); err != nil || rss <= 0 || peak < rss {
		t.Fatalf("memory = %d, %d, %v", rss, peak, err)
	}
	if n, err := c.metric(t.Context(), "go_goroutines"); err != nil || n < 1 {
		t.Fatalf("go_goroutines = %v, %v", n, err)
	}
	c.kill9()
	if ws, ok := c.state.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("state = %v", c.state)
	}
	if strings.Contains(c.stderr.String(), `"msg":"stopped"`) {
		t.Fatalf("a killed process logged a clean stop:\n%s", c.stderr.String())
	}
}
