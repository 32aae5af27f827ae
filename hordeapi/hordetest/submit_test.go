package hordetest

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestSubmit202(t *testing.T) {
	tests := []struct {
		name        string
		opts        []Option
		body        string
		wantMessage string
	}{
		{"served", nil, `{"prompt":"hi","models":["koboldcpp/Fimbulvetr-11B-v2"]}`, ""},
		{"no workers at all", []Option{WithWorkers()}, `{"prompt":"hi"}`, msgNoWorkers},
		{"no worker with the model", nil, `{"prompt":"hi","models":["koboldcpp/Nope-7B"]}`, msgNoWorkers},
		{"no worker long enough", nil, `{"prompt":"hi","params":{"max_length":2048,"max_context_length":4096}}`, msgNoWorkers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(t, tt.opts...)
			r := submitAs(t, h, TestAPIKey, tt.body)
			if r.status != http.StatusAccepted {
				t.Fatalf("status %d body %s", r.status, r.body)
			}
			m := r.object(t)
			if id, _ := m["id"].(string); !uuidRE.MatchString(id) {
				t.Errorf("id %q is not a UUID", id)
			}
			if m["kudos"] != 0.0 {
				t.Errorf("kudos = %v, want 0", m["kudos"])
			}
			msg, has := m["message"]
			if tt.wantMessage == "" && has {
				t.Errorf("unexpected message %v", msg)
			}
			if tt.wantMessage != "" && msg != tt.wantMessage {
				t.Errorf("message = %v", msg)
			}
		})
	}
}

func TestDryRun(t *testing.T) {
	tests := []struct {
		name string
		body string
		want float64
	}{
		{"no models assumes 13B", `{"prompt":"hi","dry_run":true}`, 37},
		{"11B with context", `{"prompt":"hi","dry_run":true,"models":["koboldcpp/Fimbulvetr-11B-v2"],"params":{"n":2,"max_length":200,"max_context_length":4096}}`, 269},
		{"unknown size is 2.7B", `{"prompt":"hi","dry_run":true,"models":["mystery-model"]}`, 9},
		{"70B", `{"prompt":"hi","dry_run":true,"models":["aphrodite/x/Llama-70B"]}`, 269},
		{"8x7B mixture", `{"prompt":"hi","dry_run":true,"models":["koboldcpp/Mixtral-8x7B"],"params":{"n":3,"max_length":512,"max_context_length":8192}}`, 13652},
	}
	h := newQuiet(t, WithUsers(User{APIKey: "rich", Kudos: 1e6}))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := submitAs(t, h, "rich", tt.body)
			if r.status != http.StatusOK {
				t.Fatalf("status %d body %s", r.status, r.body)
			}
			m := r.object(t)
			if len(m) != 1 || m["kudos"] != tt.want {
				t.Errorf("body %s, want kudos %v", r.body, tt.want)
			}
		})
	}
	if ids := h.RequestIDs(); len(ids) != 0 {
		t.Errorf("dry runs queued requests %v", ids)
	}
	// A dry run still goes through validation.
	if r := submitAs(t, h, "rich", `{"prompt":"","dry_run":true}`); r.status != http.StatusBadRequest {
		t.Errorf("empty prompt dry run: %d", r.status)
	}
}

func TestUpfrontKudos(t *testing.T) {
	const over = "Due to heavy demand, for requests over %d tokens, the client needs to already have the required kudos. " +
		"This request requires %s kudos to fulfil."
	tests := []struct {
		name          string
		apikey        string
		body          string
		queueFirst    int // jobs queued by another account before the submit
		wantStatus    int
		wantMsg       string
		wantMaxLength int
	}{
		{name: "anonymous at the threshold", apikey: AnonymousKey, body: `{"prompt":"hi","params":{"max_length":512}}`, wantStatus: 202, wantMaxLength: 512},
		{name: "anonymous over it without models", apikey: AnonymousKey, body: `{"prompt":"hi","params":{"max_length":513}}`, wantStatus: 403, wantMsg: fmt.Sprintf(over, 512, "20")},
		{name: "anonymous over it with a model", apikey: AnonymousKey, body: `{"prompt":"hi","models":["koboldcpp/Fimbulvetr-11B-v2"],"params":{"max_length":600}}`, wantStatus: 403, wantMsg: fmt.Sprintf(over, 512, "314.29")},
		{name: "largest model counts, times n", apikey: AnonymousKey, body: `{"prompt":"hi","models":["small-7B","koboldcpp/Fimbulvetr-11B-v2"],"params":{"max_length":600,"n":2}}`, wantStatus: 403, wantMsg: fmt.Sprintf(over, 512, "628.58")},
		{name: "allow_downgrade lowers max_length", apikey: AnonymousKey, body: `{"prompt":"hi","allow_downgrade":true,"params":{"max_length":1000}}`, wantStatus: 202, wantMaxLength: 512},
		{name: "slow_workers=false always needs kudos", apikey: AnonymousKey, body: `{"prompt":"hi","slow_workers":false,"params":{"max_length":64}}`, wantStatus: 403, wantMsg: fmt.Sprintf(over, 512, "20")},
		{name: "rich account passes", apikey: TestAPIKey, body: `{"prompt":"hi","params":{"max_length":1000}}`, wantStatus: 202, wantMaxLength: 1000},
		{name: "poor account fails", apikey: "poor", body: `{"prompt":"hi","models":["x-12B"],"params":{"max_length":512,"n":3}}`, queueFirst: 100, wantStatus: 403, wantMsg: fmt.Sprintf(over, 422, "877.71")},
		{name: "queued jobs lower the threshold", apikey: AnonymousKey, body: `{"prompt":"hi","params":{"max_length":450}}`, queueFirst: 100, wantStatus: 403, wantMsg: fmt.Sprintf(over, 422, "20")},
		{name: "downgrade to the lowered threshold", apikey: AnonymousKey, body: `{"prompt":"hi","allow_downgrade":true,"params":{"max_length":450}}`, queueFirst: 100, wantStatus: 202, wantMaxLength: 422},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newQuiet(t, WithUsers(User{APIKey: "poor", Kudos: 10}, User{APIKey: "filler", Kudos: 1e6, Concurrency: 1000}))
			for range tt.queueFirst / 20 {
				mustSubmitAs(t, h, "filler", `{"prompt":"fill","params":{"n":20}}`)
			}
			r := submitAs(t, h, tt.apikey, tt.body)
			msg, rc, _ := r.errBody(t)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d body %s", r.status, r.body)
			}
			if tt.wantStatus == 403 {
				if rc != "KudosUpfront" || msg != tt.wantMsg {
					t.Errorf("got %q %q\nwant %q", rc, msg, tt.wantMsg)
				}
				return
			}
			var out struct{ ID string }
			r.decode(t, &out)
			info, _ := h.Request(out.ID)
			if info.MaxLength != tt.wantMaxLength {
				t.Errorf("max_length stored %d, want %d", info.MaxLength, tt.wantMaxLength)
			}
		})
	}
}

func TestConcurrencyLimit(t *testing.T) {
	h := newQuiet(t, WithUsers(User{APIKey: "small", Username: "small", ID: 7, Concurrency: 3}))
	h.AddUser(User{APIKey: AnonymousKey, Concurrency: 2})

	mustSubmitAs(t, h, "small", `{"prompt":"a","params":{"n":2}}`)
	r := submitAs(t, h, "small", `{"prompt":"b","params":{"n":2}}`)
	msg, rc, _ := r.errBody(t)
	if r.status != 429 || rc != "TooManyPrompts" ||
		msg != "Parallel requests (4) exceeded user limit (3). Please try again later or request to increase your concurrency." {
		t.Fatalf("got %d %q %q", r.status, rc, msg)
	}
	mustSubmitAs(t, h, "small", `{"prompt":"c","params":{"n":1}}`)

	// Anonymous: only requests for the same models count.
	mustSubmitAs(t, h, AnonymousKey, `{"prompt":"a","models":["A"],"params":{"n":2}}`)
	mustSubmitAs(t, h, AnonymousKey, `{"prompt":"b","models":["B"],"params":{"n":2}}`)
	r = submitAs(t, h, AnonymousKey, `{"prompt":"c","models":["A"]}`)
	msg, rc, _ = r.errBody(t)
	if r.status != 429 || rc != "TooManyPrompts" || !strings.HasPrefix(msg, "Too many anonymous requests on using the AI Horde currently (3/2).") {
		t.Fatalf("anonymous: got %d %q %q", r.status, rc, msg)
	}
	// Started jobs no longer count: a worker frees the account's budget.
	h.AddWorker(Worker{Name: "w", Threads: 2})
	mustSubmitAs(t, h, "small", `{"prompt":"d","params":{"n":2}}`)
}

func TestTimeoutIP(t *testing.T) {
	h := newQuiet(t)
	h.TimeoutIP("127.0.0.1", 90*time.Second)
	check := func(want string) {
		t.Helper()
		r := submitAs(t, h, TestAPIKey, `{"prompt":"hi"}`)
		msg, rc, _ := r.errBody(t)
		if r.status != 403 || rc != "TimeoutIP" || !strings.Contains(msg, want) {
			t.Fatalf("got %d %q %q", r.status, rc, msg)
		}
	}
	check("timeout for 90 more seconds")
	h.Advance(30 * time.Second)
	check("timeout for 60 more seconds")
	h.Advance(60 * time.Second)
	mustSubmit(t, h, `{"prompt":"hi"}`)

	h.TimeoutIP("127.0.0.0/8", 5*24*time.Hour)
	check("your IP address has been put into timeout. Please try again later")
	h.TimeoutIP("127.0.0.0/8", 0)
	mustSubmit(t, h, `{"prompt":"hi"}`)
}
