package hordetest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// TestStandaloneRealClock runs NewServer on a real clock: the background
// ticker finishes jobs and fires webhooks without anyone polling.
func TestStandaloneRealClock(t *testing.T) {
	hooks := make(chan map[string]any, 1)
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		hooks <- m
	}))
	defer recv.Close()

	h := NewServer(Options{
		Clock:         clockwork.NewRealClock(),
		Workers:       []Worker{{Name: "instant", TokensPerSecond: 1e9}},
		WebhookClient: recv.Client(),
		TickInterval:  time.Millisecond,
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- h.Serve(l) }()
	base := "http://" + l.Addr().String() + "/api"

	req, _ := http.NewRequest(http.MethodPost, base+"/v2/generate/text/async",
		strings.NewReader(`{"prompt":"hi","webhook":"`+recv.URL+`"}`))
	req.Header.Set("apikey", TestAPIKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("submit %d %s", res.StatusCode, body)
	}
	var out struct{ ID string }
	_ = json.Unmarshal(body, &out)

	select {
	case m := <-hooks:
		if m["request"] != out.ID {
			t.Errorf("webhook %v", m)
		}
	case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("no webhook from the background ticker")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if err := h.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve after Close returned %v", err)
	}
}

func TestAdvanceNeedsFakeClock(t *testing.T) {
	h := NewServer(Options{Clock: clockwork.NewRealClock(), NoDefaultWorkers: true})
	defer h.Close()
	if h.FakeClock() != nil {
		t.Fatal("FakeClock on a real clock")
	}
	defer func() {
		if recover() == nil {
			t.Error("Advance on a real clock did not panic")
		}
	}()
	h.Advance(time.Second)
}

func TestSharedFakeClock(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	h := newQuiet(t, WithClock(clock))
	h.AddWorker(Worker{Name: "w", TokensPerSecond: 10})
	id := mustSubmit(t, h, `{"prompt":"hi","params":{"max_length":100}}`)
	clock.Advance(10 * time.Second) // moved by someone else
	h.Sync()
	if st := mustStatus(t, h, id); !st.Done || h.Clock() != clock || !h.Now().Equal(clock.Now()) {
		t.Fatalf("%+v", st)
	}
}
