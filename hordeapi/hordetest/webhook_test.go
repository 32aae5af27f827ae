package hordetest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWebhooks(t *testing.T) {
	type hit struct {
		body   map[string]any
		status Status // what the fake reported while the webhook was in flight
	}
	hits := make(chan hit, 10)
	var hp atomic.Pointer[Server]
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		// Calling back into the fake would deadlock if delivery held its lock.
		st, _ := hp.Load().Status(m["request"].(string))
		hits <- hit{m, st}
	}))
	defer recv.Close()

	h := newQuiet(t, WithWebhookClient(recv.Client()))
	hp.Store(h)
	w := h.AddWorker(Worker{Name: "w", Models: []string{"m-13B"}, TokensPerSecond: 10})
	id := mustSubmit(t, h, `{"prompt":"hi","models":["m-13B"],"webhook":"`+recv.URL+`/hook","params":{"n":2,"max_length":100}}`)
	st, err := h.AdvanceUntilDone(id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.FlushWebhooks(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []hit
	for len(got) < 2 {
		select {
		case x := <-hits:
			got = append(got, x)
		default:
			t.Fatalf("only %d webhooks after FlushWebhooks", len(got))
		}
	}
	for i, x := range got {
		keys := make([]string, 0, len(x.body))
		for k := range x.body {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if strings.Join(keys, ",") != "gen_metadata,id,kudos,model,request,seed,text,worker_id,worker_name" {
			t.Errorf("webhook %d keys %v", i, keys)
		}
		b := x.body
		if b["request"] != id || b["worker_id"] != w.ID || b["worker_name"] != "w" || b["model"] != "m-13B" ||
			b["seed"] != 0.0 || b["kudos"] != 45.2 || b["text"] != st.Generations[i].Text || !uuidRE.MatchString(b["id"].(string)) {
			t.Errorf("webhook %d %v", i, b)
		}
		if x.status.Finished < i+1 {
			t.Errorf("webhook %d sent before the job counted as finished: %+v", i, x.status)
		}
	}
	if got[0].body["id"] == got[1].body["id"] {
		t.Error("job ids repeat")
	}
	ds := h.Webhooks()
	if len(ds) != 2 || ds[0].Status != 200 || ds[0].Err != nil || ds[0].RequestID != id || ds[0].URL != recv.URL+"/hook" {
		t.Errorf("deliveries %+v", ds)
	}
	if !ds[0].At.Equal(DefaultStart.Add(10*time.Second)) || !ds[1].At.Equal(DefaultStart.Add(20*time.Second)) {
		t.Errorf("delivery times %s %s", ds[0].At, ds[1].At)
	}
}

func TestWebhookFailureIsRecorded(t *testing.T) {
	dead := httptest.NewTLSServer(http.NotFoundHandler())
	url := dead.URL
	client := dead.Client()
	dead.Close()
	h := newQuiet(t, WithWebhookClient(client))
	h.AddWorker(Worker{Name: "w"})
	id := mustSubmit(t, h, `{"prompt":"hi","webhook":"`+url+`"}`)
	st, err := h.AdvanceUntilDone(id, time.Minute)
	if err != nil || st.Finished != 1 {
		t.Fatalf("%v %+v", err, st)
	}
	if err := h.FlushWebhooks(context.Background()); err != nil {
		t.Fatal(err)
	}
	ds := h.Webhooks()
	if len(ds) != 1 || ds[0].Err == nil || ds[0].Status != 0 {
		t.Errorf("deliveries %+v", ds)
	}
}

// A receiver that blocks until the test reads from it must not deadlock
// Advance, and FlushWebhooks gives up with its context.
func TestWebhookReceiverMayBlockOnTheTest(t *testing.T) {
	hits := make(chan string) // unbuffered: the handler waits for the test
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		hits <- m["request"].(string)
	}))
	defer recv.Close()
	h := newQuiet(t, WithWebhookClient(recv.Client()))
	h.AddWorker(Worker{Name: "w"})
	id := mustSubmit(t, h, `{"prompt":"hi","webhook":"`+recv.URL+`"}`)
	if _, err := h.AdvanceUntilDone(id, time.Minute); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.FlushWebhooks(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("FlushWebhooks with a done context: %v", err)
	}
	if got := <-hits; got != id {
		t.Fatalf("webhook for %s", got)
	}
	if err := h.FlushWebhooks(context.Background()); err != nil {
		t.Fatal(err)
	}
}
