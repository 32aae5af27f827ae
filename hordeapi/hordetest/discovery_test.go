package hordetest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWorkersEndpoint(t *testing.T) {
	h := New(t, WithoutRateLimits())
	h.AddWorker(Worker{Name: "Newbie", Models: []string{"m-7B"}})

	var ws []map[string]json.RawMessage
	r := call(t, h, http.MethodGet, "/v2/workers?type=text", "", nil)
	r.decode(t, &ws)
	if len(ws) != 4 {
		t.Fatalf("%d workers", len(ws))
	}
	var aph workerBody
	var raw map[string]json.RawMessage
	for _, w := range ws {
		var wb workerBody
		b, _ := json.Marshal(w)
		_ = json.Unmarshal(b, &wb)
		switch wb.Name {
		case "fake-aphrodite-hermes":
			aph, raw = wb, w
		case "fake-koboldcpp-fimbulvetr":
			if string(w["team"]) != "{}" || wb.Performance != "12 tokens per second" {
				t.Errorf("fimbulvetr team %s performance %q", w["team"], wb.Performance)
			}
		case "Newbie":
			if wb.Performance != "No requests fulfilled yet" || wb.MaxLength != 512 || wb.MaxContextLength != 4096 || wb.Threads != 1 {
				t.Errorf("new worker %+v", wb)
			}
		}
	}
	if aph.Team["name"] != "Fake Team" || aph.Team["id"] == "" || !aph.Online || aph.Type != "text" || !aph.Trusted ||
		aph.Threads != 4 || aph.MaxContextLength != 16384 || aph.Performance != "30 tokens per second" ||
		!strings.HasPrefix(aph.BridgeAgent, "AI Horde Worker~aphrodite~oai/kai:") || !uuidLike(aph.ID) {
		t.Errorf("aphrodite worker %+v", aph)
	}
	var perf any
	_ = json.Unmarshal(raw["performance"], &perf)
	if _, ok := perf.(string); !ok {
		t.Errorf("performance must be a string, got %s", raw["performance"])
	}
	for _, key := range []string{"uptime", "requests_fulfilled", "uncompleted_jobs", "kudos_rewards", "kudos_details", "flagged", "maintenance_mode", "nsfw", "models"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("worker field %s missing", key)
		}
	}

	tests := []struct {
		query string
		want  []string
	}{
		{"?type=text&name=newbie", []string{"Newbie"}},
		{"?name=NEWBIE", []string{"Newbie"}},
		{"?type=text&name=nobody", nil},
		{"?type=image", nil},
		{"", []string{"fake-koboldcpp-fimbulvetr", "fake-aphrodite-hermes", "fake-koboldcpp-nemo", "Newbie"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var got []workerBody
			call(t, h, http.MethodGet, "/v2/workers"+tt.query, "", nil).decode(t, &got)
			var names []string
			for _, w := range got {
				names = append(names, w.Name)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("names %v, want %v", names, tt.want)
			}
		})
	}
	if r := call(t, h, http.MethodGet, "/v2/workers?type=bogus", "", nil); r.status != 400 {
		t.Errorf("bogus type: %d", r.status)
	}
}

func uuidLike(s string) bool { return len(s) == 36 && strings.Count(s, "-") == 4 }

func TestModelsEndpoint(t *testing.T) {
	h := newQuiet(t, WithUsers(User{APIKey: "rich", Kudos: 1e6, Concurrency: 100}))
	h.AddWorker(Worker{Name: "a", Models: []string{"koboldcpp/M-7B"}, TokensPerSecond: 10, Threads: 2})
	h.AddWorker(Worker{Name: "b", Models: []string{"koboldcpp/M-7B", "Big-70B"}, TokensPerSecond: 20, Threads: 1})
	mustSubmitAs(t, h, "rich", `{"prompt":"x","models":["koboldcpp/M-7B"],"params":{"max_length":100,"n":5}}`)
	mustSubmitAs(t, h, "rich", `{"prompt":"y","models":["Orphan-13B"],"params":{"max_length":200}}`)

	var ms []modelBody
	call(t, h, http.MethodGet, "/v2/status/models?type=text", "", nil).decode(t, &ms)
	want := []modelBody{
		{Name: "Big-70B", Count: 1, Performance: 20, ETA: 0, Type: "text"},
		{Name: "Orphan-13B", Count: 0, Performance: 0, Queued: 200, Jobs: 1, ETA: 10000, Type: "text"},
		// 5 jobs of 100 tokens, 3 running and 2 waiting, over 3 threads at 15 t/s.
		{Name: "koboldcpp/M-7B", Count: 3, Performance: 15, Queued: 500, Jobs: 5, ETA: 11, Type: "text"},
	}
	if mustJSON(t, ms) != mustJSON(t, want) {
		t.Errorf("models\n got %+v\nwant %+v", ms, want)
	}

	tests := []struct {
		query string
		want  []string
	}{
		{"", nil}, // type defaults to image
		{"?type=image", nil},
		{"?type=text&min_count=1", []string{"Big-70B", "koboldcpp/M-7B"}},
		{"?type=text&min_count=2", []string{"koboldcpp/M-7B"}},
		{"?type=text&max_count=1", []string{"Big-70B", "Orphan-13B"}},
		{"?type=text&model_state=all", []string{"Big-70B", "Orphan-13B", "koboldcpp/M-7B"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var got []modelBody
			r := call(t, h, http.MethodGet, "/v2/status/models"+tt.query, "", nil)
			r.decode(t, &got)
			var names []string
			for _, m := range got {
				names = append(names, m.Name)
			}
			if !slices.Equal(names, tt.want) || string(r.body) == "null\n" {
				t.Errorf("names %v, want %v (%s)", names, tt.want, r.body)
			}
		})
	}
	for _, q := range []string{"?type=video", "?type=text&min_count=x", "?type=text&model_state=weird"} {
		r := call(t, h, http.MethodGet, "/v2/status/models"+q, "", nil)
		if msg, _, errs := r.errBody(t); r.status != 400 || msg != "Input payload validation failed" || len(errs) != 1 {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}

	single := []struct {
		path       string
		wantStatus int
		wantRC     string
	}{
		{"/v2/status/models/Big-70B", 200, ""},
		{"/v2/status/models/Nope-7B", 404, "ModelNotFound"},
		{"/v2/status/models/koboldcpp/M-7B", 404, ""},   // Flask's string converter stops at "/"
		{"/v2/status/models/koboldcpp%2FM-7B", 404, ""}, // decoded before routing, same result
	}
	for _, tt := range single {
		t.Run(tt.path, func(t *testing.T) {
			r := call(t, h, http.MethodGet, tt.path, "", nil)
			if r.status != tt.wantStatus {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if r.status != 200 {
				if _, rc, _ := r.errBody(t); rc != tt.wantRC {
					t.Errorf("rc %q", rc)
				}
			} else {
				var got []modelBody
				r.decode(t, &got)
				if len(got) != 1 || got[0].Name != "Big-70B" {
					t.Errorf("%+v", got)
				}
			}
		})
	}
}

func TestFindUser(t *testing.T) {
	h := newQuiet(t, WithUsers(User{APIKey: "svc", Username: "bot", ID: 42, Kudos: 77.5, Service: true, Concurrency: 60}))
	id := mustSubmitAs(t, h, "svc", `{"prompt":"hi"}`)
	mustSubmitAs(t, h, AnonymousKey, `{"prompt":"hi"}`)
	tests := []struct {
		name       string
		key        string
		setKey     bool
		wantStatus int
		wantRC     string
	}{
		{"missing key", "", false, 401, "InvalidAPIKey"},
		{"unknown key", "nope", true, 404, "UserNotFound"},
		{"service user", "svc", true, 200, ""},
		{"anonymous", AnonymousKey, true, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var header http.Header
			if tt.setKey {
				header = hdr("apikey", tt.key)
			}
			r := call(t, h, http.MethodGet, "/v2/find_user", "", header)
			_, rc, _ := r.errBody(t)
			if r.status != tt.wantStatus || rc != tt.wantRC {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if r.status != 200 {
				return
			}
			var u userBody
			r.decode(t, &u)
			switch tt.key {
			case "svc":
				if u.Username != "bot#42" || u.ID != 42 || u.Kudos != 77.5 || !u.Service || u.Trusted || u.Concurrency != 60 ||
					!slices.Equal(u.ActiveGenerations["text"], []string{id}) {
					t.Errorf("%+v", u)
				}
			case AnonymousKey:
				if u.Username != "Anonymous#0" || u.ID != 0 || u.Kudos != 0 || len(u.ActiveGenerations["text"]) != 0 || u.Concurrency != 30 {
					t.Errorf("%+v", u)
				}
			}
			for _, key := range []string{"kudos_details", "records", "worker_ids", "sharedkey_ids", "styles", "account_age", "pseudonymous"} {
				if !strings.Contains(string(r.body), `"`+key+`"`) {
					t.Errorf("missing %s", key)
				}
			}
		})
	}
	// The answer is cached for 30 s per key.
	h.SetKudos("svc", 1)
	var u userBody
	call(t, h, http.MethodGet, "/v2/find_user", "", hdr("apikey", "svc")).decode(t, &u)
	if u.Kudos != 77.5 {
		t.Errorf("cached kudos %v", u.Kudos)
	}
	h.Advance(30 * time.Second)
	call(t, h, http.MethodGet, "/v2/find_user", "", hdr("apikey", "svc")).decode(t, &u)
	if u.Kudos != 1 {
		t.Errorf("kudos after 30 s %v", u.Kudos)
	}
}

func TestStatusEndpoints(t *testing.T) {
	h := newQuiet(t)
	h.AddWorker(Worker{Name: "w", TokensPerSecond: 10, Threads: 3})
	h.AddWorker(Worker{Name: "off", Offline: true})
	id := mustSubmit(t, h, `{"prompt":"hi","params":{"max_length":100,"n":4}}`)

	var hb map[string]any
	call(t, h, http.MethodGet, "/v2/status/heartbeat", "", nil).decode(t, &hb)
	if hb["message"] != "OK" || hb["version"] != hordeVersion {
		t.Errorf("heartbeat %v", hb)
	}
	var perf performanceBody
	call(t, h, http.MethodGet, "/v2/status/performance", "", nil).decode(t, &perf)
	if perf.QueuedTextRequests != 4 || perf.QueuedTokens != 400 || perf.TextWorkerCount != 1 || perf.TextThreadCount != 3 || perf.PastMinuteTokens != 0 {
		t.Errorf("performance %+v", perf)
	}
	if _, err := h.AdvanceUntilDone(id, time.Minute); err != nil {
		t.Fatal(err)
	}
	call(t, h, http.MethodGet, "/v2/status/performance", "", nil).decode(t, &perf)
	if perf.QueuedTextRequests != 0 || perf.PastMinuteTokens != 400 {
		t.Errorf("performance after %+v", perf)
	}
	var modes modesBody
	call(t, h, http.MethodGet, "/v2/status/modes", "", nil).decode(t, &modes)
	if modes.MaintenanceMode {
		t.Error("maintenance on")
	}
	h.SetMaintenance(true)
	call(t, h, http.MethodGet, "/v2/status/modes", "", nil).decode(t, &modes)
	if !modes.MaintenanceMode {
		t.Error("maintenance off")
	}
}

func TestUnknownRoutes(t *testing.T) {
	h := newQuiet(t)
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/v2/nope", 404},
		{http.MethodGet, "/v2/workers/", 404},
		{http.MethodGet, "/v2/generate/text/check/x", 404},
		{http.MethodGet, "/v1/models", 404},
		{http.MethodGet, "/v2/generate/text/async", 405},
		{http.MethodPost, "/v2/workers", 405},
		{http.MethodPut, "/v2/generate/text/status/x", 405},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := call(t, h, tt.method, tt.path, "", nil)
			msg, rc, _ := r.errBody(t)
			if r.status != tt.want || msg == "" || rc != "" || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("%d %q %q", r.status, msg, rc)
			}
		})
	}
}
