package openai

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// benchClients is how many clients send at once.
const benchClients = 200

// BenchmarkChatCompletions sends non-streaming chat completions from 200
// concurrent clients through the whole stack (HTTP, auth, bridge, status
// scheduler, hordeapi) to a fake Horde that answers at once. It reports
// requests per second and the latency hordechat adds: each request's time
// minus the time the fake Horde's handler spent on its submit and polls.
//
// "bridge-max-budget" uses the most the bridge config allows
// (bridge.status_calls_per_second = 100): every job needs at least one
// status poll, so that budget caps throughput near 100/s and the queue for
// it dominates latency. "unbounded-polls" lifts the budget through
// bridge.Deps.Scheduler to measure hordechat's own cost.
func BenchmarkChatCompletions(b *testing.B) {
	unbounded := &bridge.SchedulerConfig{CallsPerSecond: 1e6, Concurrency: benchClients}
	for _, bc := range []struct {
		name    string
		sched   *bridge.SchedulerConfig
		clients int
		rate    float64 // requests/s offered in all; 0 sends as fast as answered
	}{
		{"bridge-max-budget/clients=200", nil, benchClients, 0},
		{"unbounded-polls/clients=200", unbounded, benchClients, 0},
		{"unbounded-polls/clients=200/offered=3000rps", unbounded, benchClients, 3000},
		{"unbounded-polls/clients=1", unbounded, 1, 0},
	} {
		b.Run(bc.name, func(b *testing.B) { benchChat(b, bc.sched, bc.clients, bc.rate) })
	}
}

// benchChat runs b.N requests from clients goroutines. With rate > 0 the
// load is open: request i is due at start + i/rate, and its latency counts
// from then, so time spent waiting behind slow answers is not hidden.
func benchChat(b *testing.B, sched *bridge.SchedulerConfig, clients int, rate float64) {
	h := newHarness(b, harnessOpts{sched: sched, trackHorde: true, quiet: true, horde: []hordetest.Option{hordetest.WithoutRateLimits()}})
	transport := &http.Transport{MaxIdleConns: 2 * benchClients, MaxIdleConnsPerHost: 2 * benchClients}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	body := chatBody(modelHermes, "Hi", `"max_tokens":16`)
	send := func() (time.Duration, time.Duration, error) {
		req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+userKey)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, 0, err
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		total := time.Since(start)
		if err != nil || resp.StatusCode != 200 {
			return 0, 0, fmt.Errorf("status %d: %s %v", resp.StatusCode, raw, err)
		}
		var out struct {
			Horde struct {
				RequestID string `json:"request_id"`
			} `json:"horde"`
		}
		_ = json.Unmarshal(raw, &out)
		// The fake keeps finished requests for its simulated 20 minutes and
		// scans them all on each call; forget them, as a Horde that answers
		// instantly would not slow down with the requests it has served.
		h.fake.Vanish(out.Horde.RequestID)
		return total, total - h.side.timeFor(out.Horde.RequestID), nil
	}
	// Warm up connections and caches (key check, kudos lookup).
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() { _, _, _ = send() })
	}
	wg.Wait()

	totals := make([]time.Duration, b.N)
	added := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				var late time.Duration
				if rate > 0 {
					due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					if wait := time.Until(due); wait > 0 {
						time.Sleep(wait)
					} else {
						late = -wait
					}
				}
				t, a, err := send()
				if err != nil {
					failed.Store(err)
					return
				}
				totals[i], added[i] = t+late, a+late
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(ms(percentile(totals, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(totals, 0.90)), "p90-ms")
	b.ReportMetric(ms(percentile(totals, 0.99)), "p99-ms")
	b.ReportMetric(ms(percentile(added, 0.50)), "added-p50-ms")
	b.ReportMetric(ms(percentile(added, 0.99)), "added-p99-ms")
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkStreamMemory opens streams whose jobs wait in the Horde's queue
// (the fake's clock never moves) and measures heap and stack growth per
// open stream. Clients are raw TCP connections, so little of the growth is
// theirs; the fake Horde's own state per request is measured separately
// and subtracted for the "hordechat" figure.
func BenchmarkStreamMemory(b *testing.B) {
	const streams = 1000
	for range b.N {
		total, horde, goroutines := streamMemory(b, streams)
		b.ReportMetric(total/1024, "KB/stream-total")
		b.ReportMetric(horde/1024, "KB/stream-fake-horde")
		b.ReportMetric((total-horde)/1024, "KB/stream-hordechat")
		b.ReportMetric(goroutines, "goroutines/stream")
	}
}

func memInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse) // live objects after GC, and goroutine stacks
}

func streamMemory(b *testing.B, n int) (perStream, perHordeRequest, goroutines float64) {
	clock := clockwork.NewFakeClockAt(hordetest.DefaultStart)
	h := newHarness(b, harnessOpts{
		hordeClock: clock, quiet: true,
		sched: &bridge.SchedulerConfig{CallsPerSecond: 1e6, Concurrency: 64},
		horde: []hordetest.Option{hordetest.WithoutRateLimits(), hordetest.WithWorkers(hordetest.Worker{
			Name: "busy", Models: []string{modelFimbul}, TokensPerSecond: 0.001, Threads: 1,
		})},
	})

	perHordeRequest = fakeHordeMemory(b, n)

	addr := strings.TrimPrefix(h.ts.URL, "http://")
	body := chatBody(modelFimbul, "Hello", `"stream":true`, `"max_tokens":16`)
	req := "POST /v1/chat/completions HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + userKey +
		"\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
	// Warm up: one stream end to end, so lazily built things are counted
	// once, not per stream.
	warm := openRawStream(b, addr, req)
	warm.Close()

	before := memInUse()
	g0 := runtime.NumGoroutine()
	conns := make([]net.Conn, 0, n)
	for range n {
		conns = append(conns, openRawStream(b, addr, req))
	}
	if got := h.svc.InFlight(); got < n {
		b.Fatalf("%d jobs in flight, want %d", got, n)
	}
	after := memInUse()
	perStream = float64(after-before) / float64(n)
	goroutines = float64(runtime.NumGoroutine()-g0) / float64(n)
	for _, c := range conns {
		c.Close()
	}
	return perStream, perHordeRequest, goroutines
}

// fakeHordeMemory is the fake Horde's own memory per queued request,
// measured on a separate fake with a plain client.
func fakeHordeMemory(b *testing.B, n int) float64 {
	fake := hordetest.New(b, hordetest.WithoutRateLimits(), hordetest.WithWorkers(hordetest.Worker{
		Name: "busy", Models: []string{modelFimbul}, TokensPerSecond: 0.001, Threads: 1,
	}), hordetest.WithUsers(hordetest.User{APIKey: operatorKey, Username: "operator", Kudos: 1e6, Concurrency: 100000}))
	cfg := hordeapi.DefaultConfig()
	cfg.BaseURL, cfg.APIKey, cfg.MaxRetries = fake.URL, operatorKey, 0
	client, err := hordeapi.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	submit := func(i int) {
		if _, err := client.SubmitText(context.Background(), hordeapi.Caller{}, &hordeapi.TextRequest{
			Prompt: fmt.Sprintf("baseline %d", i), Models: []string{modelFimbul},
			Params: &hordeapi.TextParams{MaxLength: hordeapi.Ptr(16), MaxContextLength: hordeapi.Ptr(1024)},
		}); err != nil {
			b.Fatal(err)
		}
	}
	submit(-1)
	before := memInUse()
	for i := range n {
		submit(i)
	}
	return float64(memInUse()-before) / float64(n)
}

// openRawStream sends a streaming request on a raw connection and reads
// until the role chunk, so the stream is open and its job submitted.
func openRawStream(b *testing.B, addr, req string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.WriteString(c, req); err != nil {
		b.Fatal(err)
	}
	r := bufio.NewReaderSize(c, 512)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			return c
		}
	}
}
