package hordeapi_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// These tests run the client against the fake Horde over real HTTP.

const passkey = "proxy-passkey-0123456789"

func newPair(t *testing.T, opts ...hordetest.Option) (*hordetest.Server, *hordeapi.Client) {
	t.Helper()
	fake := hordetest.New(t, append([]hordetest.Option{hordetest.WithPasskey(passkey)}, opts...)...)
	cfg := hordeapi.DefaultConfig()
	cfg.BaseURL = fake.URL
	cfg.ProxyPasskey = passkey
	cfg.MaxRetries = 0
	c, err := hordeapi.New(cfg, hordeapi.WithVersion("test"))
	if err != nil {
		t.Fatal(err)
	}
	return fake, c
}

func someModel(t *testing.T, c *hordeapi.Client) string {
	t.Helper()
	models, err := c.Models(context.Background(), hordeapi.Caller{})
	if err != nil || len(models) == 0 {
		t.Fatalf("models = %v, %v", models, err)
	}
	return models[0].Name
}

func TestSubmitPollFinish(t *testing.T) {
	fake, c := newPair(t)
	ctx := context.Background()
	model := someModel(t, c)
	who := hordeapi.Caller{APIKey: hordetest.TestAPIKey, ProxiedFor: "fd12:3456:789a:bcde::1"}
	resp, err := c.SubmitText(ctx, who, &hordeapi.TextRequest{
		Prompt: "### Instruction:\nSay hi\n### Response:\n", Models: []string{model},
		ValidatedBackends: hordeapi.Ptr(false),
		Params:            &hordeapi.TextParams{MaxLength: hordeapi.Ptr(64), MaxContextLength: hordeapi.Ptr(1024), StopSequence: []string{"###"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	info, ok := fake.Request(resp.ID)
	if !ok || info.Identity != "fd12:3456:789a:bcde::1" || info.ClientAgent != "hordechat:test:https://github.com/hordechat/hordechat" {
		t.Fatalf("stored request = %+v", info)
	}
	if _, err := fake.AdvanceUntilDone(resp.ID, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	fake.Advance(time.Second) // past the 1 s status cache
	st, err := c.TextStatus(ctx, who, resp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Done || len(st.Generations) != 1 || st.Generations[0].Text == "" || st.Generations[0].Model != model {
		t.Fatalf("status = %+v", st)
	}
}

func TestFakeErrorsMapToSentinels(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(*hordetest.Server)
		who   hordeapi.Caller
		req   hordeapi.TextRequest
		want  error
	}{
		{name: "unknown key", who: hordeapi.Caller{APIKey: "no-such-key-123"}, req: hordeapi.TextRequest{Prompt: "x"}, want: hordeapi.ErrInvalidKey},
		{name: "schema range", req: hordeapi.TextRequest{Prompt: "x", Params: &hordeapi.TextParams{MaxLength: hordeapi.Ptr(5000)}}, want: hordeapi.ErrInvalidRequest},
		{name: "token overflow", req: hordeapi.TextRequest{Prompt: "x", Params: &hordeapi.TextParams{MaxLength: hordeapi.Ptr(512), MaxContextLength: hordeapi.Ptr(256)}}, want: hordeapi.ErrInvalidRequest},
		{name: "kudos upfront for anonymous", req: hordeapi.TextRequest{Prompt: "x", Params: &hordeapi.TextParams{MaxLength: hordeapi.Ptr(1024), MaxContextLength: hordeapi.Ptr(4096)}}, want: hordeapi.ErrKudosUpfront},
		{name: "maintenance", setup: func(s *hordetest.Server) { s.SetMaintenance(true) }, req: hordeapi.TextRequest{Prompt: "x"}, want: hordeapi.ErrMaintenance},
		{name: "ip timeout", setup: func(s *hordetest.Server) { s.TimeoutIP("fd00::7", 5*time.Minute) }, who: hordeapi.Caller{ProxiedFor: "fd00::7"}, req: hordeapi.TextRequest{Prompt: "x"}, want: hordeapi.ErrIPTimeout},
		{name: "limiter", setup: func(s *hordetest.Server) {
			s.Inject(hordetest.Fault{Kind: hordetest.FaultRateLimit, Method: "POST", Path: "/api/v2/generate/text/async", RetryAfter: 3 * time.Second})
		}, req: hordeapi.TextRequest{Prompt: "x"}, want: hordeapi.ErrRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, c := newPair(t)
			if tt.setup != nil {
				tt.setup(fake)
			}
			req := tt.req
			_, err := c.SubmitText(ctx, tt.who, &req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want == hordeapi.ErrRateLimited {
				var api *hordeapi.APIError
				if !errors.As(err, &api) || api.RetryAfter != 3*time.Second {
					t.Errorf("RetryAfter lost: %+v", api)
				}
			}
			if tt.want == hordeapi.ErrIPTimeout {
				if got := err.Error(); !containsAll(got, "TimeoutIP", "more seconds") {
					t.Errorf("timeout message lost: %q", got)
				}
			}
		})
	}
}

func TestVanishedAndCancelled(t *testing.T) {
	fake, c := newPair(t)
	ctx := context.Background()
	resp, err := c.SubmitText(ctx, hordeapi.Caller{}, &hordeapi.TextRequest{Prompt: "x"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.CancelText(ctx, hordeapi.Caller{}, resp.ID)
	if err != nil || st == nil {
		t.Fatalf("cancel: %v", err)
	}
	if info, _ := fake.Request(resp.ID); !info.Cancelled {
		t.Error("fake did not see the cancel")
	}
	fake.Vanish(resp.ID)
	if _, err := c.TextStatus(ctx, hordeapi.Caller{}, resp.ID); !errors.Is(err, hordeapi.ErrNotFound) {
		t.Fatalf("vanished: err = %v", err)
	}
}

func TestDiscoveryAndUser(t *testing.T) {
	_, c := newPair(t)
	ctx := context.Background()
	workers, err := c.Workers(ctx, hordeapi.Caller{})
	if err != nil || len(workers) == 0 {
		t.Fatalf("workers = %v, %v", workers, err)
	}
	for _, w := range workers {
		if w.TokensPerSecond() <= 0 || len(w.Models) == 0 || w.MaxContextLength < w.MaxLength {
			t.Errorf("worker decoded badly: %+v", w)
		}
	}
	u, err := c.FindUser(ctx, hordeapi.Caller{APIKey: hordetest.TestAPIKey})
	if err != nil || u.Username != "tester#1" || u.Kudos <= 0 {
		t.Fatalf("find_user = %+v, %v", u, err)
	}
	if _, err := c.FindUser(ctx, hordeapi.Caller{APIKey: "unknown-key-99"}); !errors.Is(err, hordeapi.ErrInvalidKey) {
		t.Errorf("unknown key: %v", err)
	}
	if hb, err := c.Heartbeat(ctx); err != nil || hb.Message != "OK" {
		t.Errorf("heartbeat = %+v, %v", hb, err)
	}
	if perf, err := c.Performance(ctx); err != nil || perf.TextWorkerCount != len(workers) {
		t.Errorf("performance = %+v, %v", perf, err)
	}
	if _, err := c.Modes(ctx); err != nil {
		t.Errorf("modes: %v", err)
	}
	kudos, err := c.EstimateText(ctx, hordeapi.Caller{APIKey: hordetest.TestAPIKey}, &hordeapi.TextRequest{Prompt: "x", Models: []string{workers[0].Models[0]}, Params: &hordeapi.TextParams{MaxLength: hordeapi.Ptr(200)}})
	if err != nil || kudos <= 0 {
		t.Errorf("estimate = %v, %v", kudos, err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
