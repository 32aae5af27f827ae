package hordetest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestHTTPFaults(t *testing.T) {
	tests := []struct {
		name       string
		fault      Fault
		method     string
		path       string
		wantStatus int
		wantBody   string
		wantRetry  string
	}{
		{"custom 503", Fault{Kind: FaultStatus, Method: "POST", Path: "/v2/generate/text/async", Status: 503, Body: `{"message": "Service Unavailable"}`, Count: 1},
			"POST", "/v2/generate/text/async", 503, `{"message": "Service Unavailable"}`, ""},
		{"default 500", Fault{Kind: FaultStatus, Path: "/v2/workers", Count: 1},
			"GET", "/v2/workers?type=text", 500, `{"message": "Internal Server Error"}`, ""},
		{"limiter 429", Fault{Kind: FaultRateLimit, Path: "/v2/generate/text/status/", RetryAfter: 5 * time.Second, Count: 1},
			"GET", "/v2/generate/text/status/abc", 429, `{"message":"2 per 1 second"}`, "5"},
		{"full path prefix", Fault{Kind: FaultStatus, Path: "/api/v2/find_user", Status: 502, Count: 1},
			"GET", "/v2/find_user", 502, `{"message": "Internal Server Error"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(t, WithoutRateLimits())
			f := h.Inject(tt.fault)
			body := ""
			if tt.method == "POST" {
				body = `{"prompt":"hi"}`
			}
			r := call(t, h, tt.method, tt.path, body, hdr("apikey", TestAPIKey))
			if r.status != tt.wantStatus || !equalJSON(r.body, []byte(tt.wantBody)) || r.header.Get("Retry-After") != tt.wantRetry {
				t.Fatalf("got %d %s Retry-After %q", r.status, r.body, r.header.Get("Retry-After"))
			}
			if f.Hits() != 1 {
				t.Errorf("hits %d", f.Hits())
			}
			// Count 1: the next request is served normally.
			if r := call(t, h, tt.method, tt.path, body, hdr("apikey", TestAPIKey)); r.status == tt.wantStatus {
				t.Errorf("fault hit twice: %d %s", r.status, r.body)
			}
		})
	}
}

func TestFaultMatching(t *testing.T) {
	h := newQuiet(t)
	id := mustSubmit(t, h, `{"prompt":"hi"}`)
	f := h.Inject(Fault{Kind: FaultStatus, Method: http.MethodDelete, Path: "/v2/generate/text/status/"})
	for range 3 {
		if _, r := getStatus(t, h, id); r.status != 200 {
			t.Fatalf("GET hit by a DELETE fault: %d", r.status)
		}
		if r := call(t, h, http.MethodDelete, "/v2/generate/text/status/"+id, "", nil); r.status != 500 {
			t.Fatalf("DELETE not hit: %d", r.status)
		}
	}
	if f.Hits() != 3 {
		t.Errorf("hits %d", f.Hits())
	}
	f.Clear()
	if r := call(t, h, http.MethodDelete, "/v2/generate/text/status/"+id, "", nil); r.status != 200 {
		t.Fatalf("after Clear: %d", r.status)
	}
	// ClearFaults removes everything.
	h.Inject(Fault{Kind: FaultStatus})
	h.ClearFaults()
	if _, r := getStatus(t, h, id); r.status != 200 {
		t.Fatalf("after ClearFaults: %d", r.status)
	}
}

func TestFaultReset(t *testing.T) {
	h := newQuiet(t)
	h.Inject(Fault{Kind: FaultReset, Path: "/v2/status/heartbeat", Count: 1})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Get(h.URL + "/v2/status/heartbeat")
	if err == nil {
		res.Body.Close()
		t.Fatalf("expected a connection error, got %d", res.StatusCode)
	}
	res, err = client.Get(h.URL + "/v2/status/heartbeat")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
}

func TestFaultHang(t *testing.T) {
	t.Run("until the client gives up", func(t *testing.T) {
		h := newQuiet(t)
		f := h.Inject(Fault{Kind: FaultHang, Path: "/v2/status/heartbeat"})
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+"/v2/status/heartbeat", nil)
			res, err := http.DefaultClient.Do(req)
			if err == nil {
				res.Body.Close()
			}
			errc <- err
		}()
		if err := f.WaitHits(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("client error %v", err)
		}
	})
	t.Run("until released", func(t *testing.T) {
		h := newQuiet(t)
		f := h.Inject(Fault{Kind: FaultHang, Path: "/v2/status/heartbeat", Count: 2})
		results := make(chan int, 2)
		for range 2 {
			go func() {
				res, err := http.Get(h.URL + "/v2/status/heartbeat")
				if err != nil {
					results <- 0
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				results <- res.StatusCode
			}()
		}
		if err := f.WaitHits(context.Background(), 2); err != nil {
			t.Fatal(err)
		}
		f.Release()
		for range 2 {
			if code := <-results; code != 200 {
				t.Fatalf("released request got %d", code)
			}
		}
	})
	t.Run("close releases held requests", func(t *testing.T) {
		h := NewServer(Options{NoDefaultWorkers: true})
		srv := newHTTPTest(t, h)
		f := h.Inject(Fault{Kind: FaultHang})
		done := make(chan struct{})
		go func() {
			defer close(done)
			if res, err := http.Get(srv + "/v2/status/heartbeat"); err == nil {
				res.Body.Close()
			}
		}()
		if err := f.WaitHits(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		_ = h.Close()
		<-done
	})
}

func TestFaultDelay(t *testing.T) {
	h := newQuiet(t)
	f := h.Inject(Fault{Kind: FaultDelay, Delay: 5 * time.Millisecond, Path: "/v2/status/modes", Count: 1})
	if r := call(t, h, http.MethodGet, "/v2/status/modes", "", nil); r.status != 200 {
		t.Fatalf("delayed request: %d", r.status)
	}
	if f.Hits() != 1 {
		t.Errorf("hits %d", f.Hits())
	}
}

func TestVanish(t *testing.T) {
	h := newQuiet(t)
	id := mustSubmit(t, h, `{"prompt":"hi"}`)
	getStatus(t, h, id) // warm the status cache
	if !h.Vanish(id) {
		t.Fatal("Vanish: unknown id")
	}
	_, r := getStatus(t, h, id)
	if _, rc, _ := r.errBody(t); r.status != 404 || rc != "RequestNotFound" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if h.Vanish(id) {
		t.Error("vanished twice")
	}
}

// newHTTPTest serves a NewServer fake on an httptest server and returns its
// API base.
func newHTTPTest(t *testing.T, h *Server) string {
	t.Helper()
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = h.Close() })
	return srv.URL + "/api"
}
