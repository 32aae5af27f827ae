package hordetest

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

const dryRun = `{"prompt":"hi","dry_run":true}`

// want429 checks a limiter rejection: a bare message, no rc, and headers.
func want429(t *testing.T, r resp, wantMsg, wantRetry string) {
	t.Helper()
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
	if m := r.object(t); len(m) != 1 || m["message"] != wantMsg {
		t.Errorf("body %s, want only message %q", r.body, wantMsg)
	}
	if got := r.header.Get("Retry-After"); got != wantRetry {
		t.Errorf("Retry-After %q, want %q", got, wantRetry)
	}
	if r.header.Get("X-RateLimit-Limit") == "" || r.header.Get("X-RateLimit-Remaining") != "0" || r.header.Get("X-RateLimit-Reset") == "" {
		t.Errorf("X-RateLimit headers %v", r.header)
	}
}

func wantOK(t *testing.T, r resp) {
	t.Helper()
	if r.status != http.StatusOK && r.status != http.StatusAccepted {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
}

func TestSubmitRateLimits(t *testing.T) {
	proxied := func(ip string) []string { return []string{"Proxy-Authorization", "pk", "Proxied-For", ip} }
	tests := []struct {
		name string
		run  func(t *testing.T, h *Server)
	}{
		{"2 per second per identity", func(t *testing.T, h *Server) {
			wantOK(t, submitAs(t, h, TestAPIKey, dryRun))
			wantOK(t, submitAs(t, h, "other", dryRun))
			want429(t, submitAs(t, h, TestAPIKey, dryRun), "2 per 1 second", "1")
			h.Advance(time.Second)
			wantOK(t, submitAs(t, h, TestAPIKey, dryRun))
		}},
		{"2 per second per key across identities", func(t *testing.T, h *Server) {
			wantOK(t, submitAs(t, h, TestAPIKey, dryRun, proxied("10.0.0.1")...))
			wantOK(t, submitAs(t, h, TestAPIKey, dryRun, proxied("10.0.0.2")...))
			want429(t, submitAs(t, h, TestAPIKey, dryRun, proxied("10.0.0.3")...), "2 per 1 second", "1")
			wantOK(t, submitAs(t, h, "other", dryRun, proxied("10.0.0.3")...))
		}},
		{"60 per second for the anonymous key", func(t *testing.T, h *Server) {
			for i := range 60 {
				wantOK(t, submitAs(t, h, AnonymousKey, dryRun, proxied(fmt.Sprintf("10.0.1.%d", i))...))
			}
			want429(t, submitAs(t, h, AnonymousKey, dryRun, proxied("10.0.2.1")...), "60 per 1 second", "1")
		}},
		{"90 per minute per identity", func(t *testing.T, h *Server) {
			for range 45 {
				wantOK(t, submitAs(t, h, TestAPIKey, dryRun))
				wantOK(t, submitAs(t, h, "other", dryRun))
				h.Advance(time.Second)
			}
			want429(t, submitAs(t, h, TestAPIKey, dryRun), "90 per 1 minute", "15")
			want429(t, submitAs(t, h, TestAPIKey, dryRun, proxied("127.0.0.1")...), "90 per 1 minute", "15")
			wantOK(t, submitAs(t, h, TestAPIKey, dryRun, proxied("10.9.9.9")...))
			h.Advance(15 * time.Second)
			wantOK(t, submitAs(t, h, TestAPIKey, dryRun))
		}},
		{"trusted account whitelists its address", func(t *testing.T, h *Server) {
			h.AddUser(User{APIKey: "trusted", Trusted: true})
			wantOK(t, submitAs(t, h, "trusted", dryRun))
			h.Advance(time.Second)
			for range 10 {
				wantOK(t, submitAs(t, h, "trusted", dryRun))
			}
			want429(t, submitAs(t, h, "trusted", dryRun), "10 per 1 second", "1")
		}},
		{"proxied trusted requests do not whitelist", func(t *testing.T, h *Server) {
			h.AddUser(User{APIKey: "trusted", Trusted: true})
			wantOK(t, submitAs(t, h, "trusted", dryRun, proxied("10.0.0.1")...))
			h.Advance(time.Second)
			wantOK(t, submitAs(t, h, "trusted", dryRun, proxied("10.0.0.1")...))
			wantOK(t, submitAs(t, h, "trusted", dryRun, proxied("10.0.0.1")...))
			want429(t, submitAs(t, h, "trusted", dryRun, proxied("10.0.0.1")...), "2 per 1 second", "1")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(t, WithWorkers(), WithPasskey("pk"), WithUsers(User{APIKey: "other", Kudos: 10}))
			tt.run(t, h)
		})
	}
}

func TestStaticWhitelist(t *testing.T) {
	h := New(t, WithWorkers(), func(o *Options) { o.WhitelistedIPs = []string{"127.0.0.1"} })
	for range 10 {
		wantOK(t, submitAs(t, h, AnonymousKey, dryRun))
	}
	want429(t, submitAs(t, h, AnonymousKey, dryRun), "10 per 1 second", "1")
}

func TestStatusRateLimitPerIdentityAndPath(t *testing.T) {
	h := New(t, WithWorkers(), WithPasskey("pk"))
	a := mustSubmit(t, h, `{"prompt":"a"}`)
	h.Advance(time.Second)
	b := mustSubmit(t, h, `{"prompt":"b"}`)
	for range 60 {
		_, r := getStatus(t, h, a)
		wantOK(t, r)
	}
	_, r := getStatus(t, h, a)
	want429(t, r, "60 per 1 minute", "60")
	_, r = getStatus(t, h, b)
	wantOK(t, r) // another id has its own bucket
	_, r = getStatus(t, h, a, "Proxy-Authorization", "pk", "Proxied-For", "10.0.0.1")
	wantOK(t, r)                                                                     // another identity has its own bucket
	wantOK(t, call(t, h, http.MethodDelete, "/v2/generate/text/status/"+a, "", nil)) // DELETE has its own
	h.Advance(20 * time.Second)
	_, r = getStatus(t, h, a)
	want429(t, r, "60 per 1 minute", "40")
	h.Advance(40 * time.Second)
	_, r = getStatus(t, h, a)
	wantOK(t, r)
}

func TestDefaultLimitPerRemoteAddress(t *testing.T) {
	h := New(t, WithPasskey("pk"))
	for range 90 {
		wantOK(t, call(t, h, http.MethodGet, "/v2/workers?type=text", "", nil))
	}
	r := call(t, h, http.MethodGet, "/v2/workers?type=text", "", hdr("Proxy-Authorization", "pk", "Proxied-For", "10.0.0.1"))
	want429(t, r, "90 per 1 minute", "60") // keyed on the real address, not Proxied-For
	wantOK(t, call(t, h, http.MethodGet, "/v2/status/models?type=text", "", nil))
	for range 200 {
		wantOK(t, call(t, h, http.MethodGet, "/v2/status/heartbeat", "", nil))
	}
}

func TestRateLimitHeadersOnSuccess(t *testing.T) {
	h := New(t, WithWorkers())
	r := submitAs(t, h, TestAPIKey, dryRun)
	if r.header.Get("X-RateLimit-Limit") != "2" || r.header.Get("X-RateLimit-Remaining") != "1" || r.header.Get("Retry-After") != "" {
		t.Errorf("headers %v", r.header)
	}
	want := fmt.Sprint(DefaultStart.Add(time.Second).Unix())
	if got := r.header.Get("X-RateLimit-Reset"); got != want {
		t.Errorf("X-RateLimit-Reset %s, want %s", got, want)
	}
}
