package hordetest

import (
	"net/http"
	"testing"
	"time"
)

func TestRequestRecording(t *testing.T) {
	h := New(t, WithPasskey("pk"), WithoutRateLimits())
	id := mustSubmit(t, h, `{"prompt":"hi"}`, "Client-Agent", "hordechat:1.0:test", "Proxy-Authorization", "pk", "Proxied-For", "fd00::1")
	h.Advance(3 * time.Second)
	call(t, h, http.MethodGet, "/v2/workers?type=text&name=x", "", nil)
	h.Inject(Fault{Kind: FaultStatus, Path: "/v2/status/modes", Count: 1})
	call(t, h, http.MethodGet, "/v2/status/modes", "", nil)

	all := h.Requests()
	if len(all) != 3 {
		t.Fatalf("%d requests recorded", len(all))
	}
	post := all[0]
	if post.Method != "POST" || post.Path != "/api/v2/generate/text/async" || string(post.Body) != `{"prompt":"hi"}` ||
		post.Header.Get("Client-Agent") != "hordechat:1.0:test" || post.Header.Get("apikey") != TestAPIKey ||
		post.Identity != "fd00::1" || !post.Proxied || post.RemoteAddr != "127.0.0.1" || !post.Time.Equal(DefaultStart) {
		t.Errorf("POST record %+v", post)
	}
	if info, _ := h.Request(id); info.ClientAgent != "hordechat:1.0:test" {
		t.Errorf("client agent stored %q", info.ClientAgent)
	}
	get := all[1]
	if get.RawQuery != "type=text&name=x" || get.Identity != "127.0.0.1" || get.Proxied || !get.Time.Equal(DefaultStart.Add(3*time.Second)) {
		t.Errorf("GET record %+v", get)
	}
	if all[2].Path != "/api/v2/status/modes" {
		t.Errorf("faulted request not recorded: %+v", all[2])
	}

	// Copies: changing what was returned does not change the record.
	all[0].Header.Set("apikey", "changed")
	all[0].Body[0] = 'X'
	if again := h.Requests()[0]; again.Header.Get("apikey") != TestAPIKey || again.Body[0] != '{' {
		t.Error("record shares memory with a returned copy")
	}

	tests := []struct {
		method, prefix string
		want           int
	}{
		{"", "/v2/", 3},
		{"GET", "/v2/", 2},
		{"post", "/v2/generate", 1},
		{"", "/api/v2/workers", 1},
		{"DELETE", "", 0},
	}
	for _, tt := range tests {
		if got := len(h.RequestsTo(tt.method, tt.prefix)); got != tt.want {
			t.Errorf("RequestsTo(%q, %q) = %d, want %d", tt.method, tt.prefix, got, tt.want)
		}
	}
	h.ResetRequests()
	if len(h.Requests()) != 0 {
		t.Error("ResetRequests kept records")
	}
}
