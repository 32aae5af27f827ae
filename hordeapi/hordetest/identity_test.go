package hordetest

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestProxiedFor(t *testing.T) {
	long := "fe80::1%" + strings.Repeat("z", 40)
	tests := []struct {
		name         string
		opts         []Option
		headers      []string
		wantStatus   int
		wantIdentity string
	}{
		{"no headers", nil, nil, 202, "127.0.0.1"},
		{"right passkey", nil, []string{"Proxy-Authorization", "pk-secret", "Proxied-For", "203.0.113.9"}, 202, "203.0.113.9"},
		{"right passkey, IPv6 pseudo-address", nil, []string{"Proxy-Authorization", "pk-secret", "Proxied-For", "fd12:3456:789a:1::1"}, 202, "fd12:3456:789a:1::1"},
		{"wrong passkey is ignored", nil, []string{"Proxy-Authorization", "guessed", "Proxied-For", "203.0.113.9"}, 202, "127.0.0.1"},
		{"bearer prefix is not the passkey", nil, []string{"Proxy-Authorization", "Bearer pk-secret", "Proxied-For", "203.0.113.9"}, 202, "127.0.0.1"},
		{"passkey without Proxied-For", nil, []string{"Proxy-Authorization", "pk-secret"}, 202, "127.0.0.1"},
		{"Proxied-For without passkey", nil, []string{"Proxied-For", "203.0.113.9"}, 202, "127.0.0.1"},
		{"honoured non-IP fails", nil, []string{"Proxy-Authorization", "pk-secret", "Proxied-For", "discord:1234"}, 500, ""},
		{"honoured value over 39 chars fails", nil, []string{"Proxy-Authorization", "pk-secret", "Proxied-For", long}, 500, ""},
		{"ignored non-IP is harmless", nil, []string{"Proxy-Authorization", "nope", "Proxied-For", "discord:1234"}, 202, "127.0.0.1"},
		{"lenient accepts any value", []Option{func(o *Options) { o.LenientProxiedFor = true }}, []string{"Proxy-Authorization", "pk-secret", "Proxied-For", "discord:1234"}, 202, "discord:1234"},
		{"no passkey configured", []Option{WithPasskey("")}, []string{"Proxy-Authorization", "", "Proxied-For", "203.0.113.9"}, 202, "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]Option{WithPasskey("pk-secret"), WithWorkers(), WithoutRateLimits()}, tt.opts...)
			h := New(t, opts...)
			r := submitAs(t, h, TestAPIKey, `{"prompt":"hi"}`, tt.headers...)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d body %s", r.status, r.body)
			}
			rec := h.RequestsTo(http.MethodPost, "/v2/generate/text/async")
			if tt.wantStatus == 500 {
				if m := r.object(t); len(m) != 1 || m["message"] != "Internal Server Error" {
					t.Errorf("500 body %s", r.body)
				}
				if !rec[0].Proxied {
					t.Error("recorded identity should be the honoured Proxied-For")
				}
				return
			}
			var out struct{ ID string }
			r.decode(t, &out)
			info, _ := h.Request(out.ID)
			if info.Identity != tt.wantIdentity || info.RemoteAddr != "127.0.0.1" {
				t.Errorf("stored identity %q remote %q", info.Identity, info.RemoteAddr)
			}
			if rec[0].Identity != tt.wantIdentity {
				t.Errorf("recorded identity %q", rec[0].Identity)
			}
		})
	}
}

func TestIdentityDrivesTimeoutsAndLimits(t *testing.T) {
	h := New(t, WithWorkers(), WithPasskey("pk"))
	as := func(ip string) []string { return []string{"Proxy-Authorization", "pk", "Proxied-For", ip} }
	h.TimeoutIP("198.51.100.7", time.Minute)
	r := submitAs(t, h, TestAPIKey, dryRun, as("198.51.100.7")...)
	if _, rc, _ := r.errBody(t); r.status != 403 || rc != "TimeoutIP" {
		t.Fatalf("timed-out identity: %d %s", r.status, r.body)
	}
	// The bot's own address and other users are not affected.
	wantOK(t, submitAs(t, h, TestAPIKey, dryRun))
	h.Advance(time.Second)
	// Each identity has its own 2/s window.
	for _, ip := range []string{"198.51.100.1", "198.51.100.2"} {
		wantOK(t, submitAs(t, h, AnonymousKey, dryRun, as(ip)...))
		wantOK(t, submitAs(t, h, AnonymousKey, dryRun, as(ip)...))
	}
	want429(t, submitAs(t, h, AnonymousKey, dryRun, as("198.51.100.1")...), "2 per 1 second", "1")
}
