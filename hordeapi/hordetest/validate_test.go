package hordetest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestSubmitSchemaValidation(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantKey string
		wantMsg string
	}{
		{"float for integer", `{"prompt":"hi","params":{"max_length":2048.5}}`, "params.max_length", "2048.5 is not of type 'integer'"},
		{"string for integer", `{"prompt":"hi","params":{"max_length":"2048"}}`, "params.max_length", "'2048' is not of type 'integer'"},
		{"integral float for integer", `{"prompt":"hi","params":{"max_context_length":2048.0}}`, "params.max_context_length", "2048.0 is not of type 'integer'"},
		{"exponent for integer", `{"prompt":"hi","params":{"n":1e0}}`, "params.n", "1e0 is not of type 'integer'"},
		{"bool for integer", `{"prompt":"hi","params":{"top_k":true}}`, "params.top_k", "True is not of type 'integer'"},
		{"n below", `{"prompt":"hi","params":{"n":0}}`, "params.n", "0 is less than the minimum of 1"},
		{"n above", `{"prompt":"hi","params":{"n":21}}`, "params.n", "21 is greater than the maximum of 20"},
		{"context below", `{"prompt":"hi","params":{"max_context_length":79}}`, "params.max_context_length", "79 is less than the minimum of 80"},
		{"context above", `{"prompt":"hi","params":{"max_context_length":1048577}}`, "params.max_context_length", "1048577 is greater than the maximum of 1048576"},
		{"length below", `{"prompt":"hi","params":{"max_length":15}}`, "params.max_length", "15 is less than the minimum of 16"},
		{"length above", `{"prompt":"hi","params":{"max_length":4097}}`, "params.max_length", "4097 is greater than the maximum of 4096"},
		{"temperature below", `{"prompt":"hi","params":{"temperature":-0.1}}`, "params.temperature", "-0.1 is less than the minimum of 0"},
		{"temperature above", `{"prompt":"hi","params":{"temperature":5.1}}`, "params.temperature", "5.1 is greater than the maximum of 5"},
		{"temperature string", `{"prompt":"hi","params":{"temperature":"0.7"}}`, "params.temperature", "'0.7' is not of type 'number'"},
		{"top_p below", `{"prompt":"hi","params":{"top_p":0}}`, "params.top_p", "0 is less than the minimum of 0.001"},
		{"top_p above", `{"prompt":"hi","params":{"top_p":1.5}}`, "params.top_p", "1.5 is greater than the maximum of 1"},
		{"top_k above", `{"prompt":"hi","params":{"top_k":201}}`, "params.top_k", "201 is greater than the maximum of 200"},
		{"top_k float", `{"prompt":"hi","params":{"top_k":1.5}}`, "params.top_k", "1.5 is not of type 'integer'"},
		{"top_a above", `{"prompt":"hi","params":{"top_a":1.1}}`, "params.top_a", "1.1 is greater than the maximum of 1"},
		{"typical below", `{"prompt":"hi","params":{"typical":-1}}`, "params.typical", "-1 is less than the minimum of 0"},
		{"tfs above", `{"prompt":"hi","params":{"tfs":2}}`, "params.tfs", "2 is greater than the maximum of 1"},
		{"min_p above", `{"prompt":"hi","params":{"min_p":1.5}}`, "params.min_p", "1.5 is greater than the maximum of 1"},
		{"rep_pen below", `{"prompt":"hi","params":{"rep_pen":0.9}}`, "params.rep_pen", "0.9 is less than the minimum of 1"},
		{"rep_pen above", `{"prompt":"hi","params":{"rep_pen":3.1}}`, "params.rep_pen", "3.1 is greater than the maximum of 3"},
		{"rep_pen_range above", `{"prompt":"hi","params":{"rep_pen_range":4097}}`, "params.rep_pen_range", "4097 is greater than the maximum of 4096"},
		{"rep_pen_range float", `{"prompt":"hi","params":{"rep_pen_range":10.5}}`, "params.rep_pen_range", "10.5 is not of type 'integer'"},
		{"rep_pen_slope above", `{"prompt":"hi","params":{"rep_pen_slope":11}}`, "params.rep_pen_slope", "11 is greater than the maximum of 10"},
		{"smoothing_factor above", `{"prompt":"hi","params":{"smoothing_factor":10.5}}`, "params.smoothing_factor", "10.5 is greater than the maximum of 10"},
		{"dynatemp_range above", `{"prompt":"hi","params":{"dynatemp_range":6}}`, "params.dynatemp_range", "6 is greater than the maximum of 5"},
		{"dynatemp_exponent below", `{"prompt":"hi","params":{"dynatemp_exponent":-1}}`, "params.dynatemp_exponent", "-1 is less than the minimum of 0"},
		{"singleline string", `{"prompt":"hi","params":{"singleline":"yes"}}`, "params.singleline", "'yes' is not of type 'boolean'"},
		{"stop_sequence string", `{"prompt":"hi","params":{"stop_sequence":"\n"}}`, "params.stop_sequence", "'\\n' is not of type 'array'"},
		{"stop_sequence item", `{"prompt":"hi","params":{"stop_sequence":["a",1]}}`, "params.stop_sequence.1", "1 is not of type 'string'"},
		{"sampler_order item", `{"prompt":"hi","params":{"sampler_order":[6,0,1.5]}}`, "params.sampler_order.2", "1.5 is not of type 'integer'"},
		{"softprompt empty", `{"prompt":"hi","softprompt":""}`, "softprompt", "'' is too short"},
		{"models not a list", `{"prompt":"hi","models":"koboldcpp/x"}`, "models", "'koboldcpp/x' is not of type 'array'"},
		{"models item", `{"prompt":"hi","models":[7]}`, "models.0", "7 is not of type 'string'"},
		{"trusted_workers string", `{"prompt":"hi","trusted_workers":"true"}`, "trusted_workers", "'true' is not of type 'boolean'"},
		{"webhook null", `{"prompt":"hi","webhook":null}`, "webhook", "None is not of type 'string'"},
		{"prompt missing", `{"params":{}}`, "prompt", "'prompt' is a required property"},
		{"prompt not a string", `{"prompt":42}`, "prompt", "42 is not of type 'string'"},
		{"params not an object", `{"prompt":"hi","params":[1]}`, "params", "[1] is not of type 'object'"},
		{"body not an object", `["hi"]`, "", "['hi'] is not of type 'object'"},
	}
	h := newQuiet(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := submitAs(t, h, TestAPIKey, tt.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status = %d, body %s", r.status, r.body)
			}
			msg, rc, errs := r.errBody(t)
			if msg != "Input payload validation failed" || rc != "" {
				t.Errorf("message %q rc %q", msg, rc)
			}
			if got, ok := errs[tt.wantKey]; !ok || got != tt.wantMsg {
				t.Errorf("errors = %v, want %q: %q", errs, tt.wantKey, tt.wantMsg)
			}
		})
	}
	if ids := h.RequestIDs(); len(ids) != 0 {
		t.Errorf("invalid submits queued %v", ids)
	}
}

func TestSubmitValidationCollectsAllErrors(t *testing.T) {
	h := newQuiet(t)
	r := submitAs(t, h, TestAPIKey, `{"prompt":"hi","params":{"n":0,"max_length":"80"},"models":"x"}`)
	_, _, errs := r.errBody(t)
	for _, k := range []string{"params.n", "params.max_length", "models"} {
		if _, ok := errs[k]; !ok {
			t.Errorf("missing error for %s in %v", k, errs)
		}
	}
}

func TestSubmitBoundaryValuesAccepted(t *testing.T) {
	h := newQuiet(t, WithUsers(User{APIKey: "rich", Kudos: 1e9, Concurrency: 1000}))
	tests := []struct {
		name   string
		params string
	}{
		{"minimums", `{"n":1,"max_context_length":80,"max_length":16,"temperature":0,"top_p":0.001,"top_k":0,"top_a":0,"typical":0,"tfs":0,"min_p":0,"rep_pen":1,"rep_pen_range":0,"rep_pen_slope":0,"smoothing_factor":0,"dynatemp_range":0,"dynatemp_exponent":0}`},
		{"maximums", `{"n":20,"max_context_length":1048576,"max_length":4096,"temperature":5,"top_p":1,"top_k":200,"top_a":1,"typical":1,"tfs":1,"min_p":1,"rep_pen":3,"rep_pen_range":4096,"rep_pen_slope":10,"smoothing_factor":10,"dynatemp_range":5,"dynatemp_exponent":5}`},
		{"floats as integers literal", `{"temperature":1,"rep_pen":2}`},
		{"unknown keys pass", `{"max_length":64,"mirostat":2,"grammar":"root ::= x","banned_tokens":["a"]}`},
		{"full sampler order", `{"sampler_order":[6,0,1,3,4,2,5]}`},
		{"flags", `{"singleline":true,"frmtadsnsp":false,"frmtrmblln":true,"frmtrmspch":false,"frmttriminc":true,"use_default_badwordsids":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := submitAs(t, h, "rich", `{"prompt":"hi","params":`+tt.params+`}`)
			if r.status != http.StatusAccepted {
				t.Fatalf("status %d body %s", r.status, r.body)
			}
		})
	}
	ids := h.RequestIDs()
	info, _ := h.Request(ids[3])
	if info.Params["mirostat"] == nil || info.Params["grammar"] != "root ::= x" {
		t.Errorf("unknown params not stored: %v", info.Params)
	}
}

func TestSubmitRCErrors(t *testing.T) {
	stops := func(n, size int) string { // n distinct sequences of size chars
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`"%0*d"`, size, i)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	tests := []struct {
		name       string
		setup      func(h *Server)
		apikey     string
		body       string
		wantStatus int
		wantRC     string
		wantMsg    string
	}{
		{name: "unknown key", apikey: "nope", body: `{"prompt":"hi"}`, wantStatus: 401, wantRC: "InvalidAPIKey", wantMsg: "No user matching sent API Key"},
		{name: "empty key", apikey: "", body: `{"prompt":"hi"}`, wantStatus: 401, wantRC: "InvalidAPIKey"},
		{name: "empty prompt", body: `{"prompt":""}`, wantStatus: 400, wantRC: "MissingPrompt", wantMsg: "You cannot specify an empty prompt."},
		{name: "token overflow", body: `{"prompt":"hi","params":{"max_context_length":100,"max_length":120}}`, wantStatus: 400, wantRC: "TokenOverflow"},
		{name: "token overflow with default context", body: `{"prompt":"hi","params":{"max_length":4096}}`, wantStatus: 400, wantRC: "TokenOverflow"},
		{name: "token overflow with default length", body: `{"prompt":"hi","params":{"max_context_length":80,"max_length":81}}`, wantStatus: 400, wantRC: "TokenOverflow"},
		{name: "sampler order too short", body: `{"prompt":"hi","params":{"sampler_order":[0,1,2,3,4,5]}}`, wantStatus: 400, wantRC: "MissingFullSamplerOrder"},
		{name: "sampler order with duplicates", body: `{"prompt":"hi","params":{"sampler_order":[0,1,2,3,4,5,5]}}`, wantStatus: 400, wantRC: "MissingFullSamplerOrder"},
		{name: "too many stop sequences", body: `{"prompt":"hi","params":{"stop_sequence":` + stops(129, 4) + `}}`, wantStatus: 400, wantRC: "TooManyStopSequences"},
		{name: "excessive stop sequences", body: `{"prompt":"hi","params":{"stop_sequence":` + stops(2, 1001) + `}}`, wantStatus: 400, wantRC: "ExcessiveStopSequence"},
		{name: "nul in prompt", body: `{"prompt":"a\u0000b"}`, wantStatus: 400, wantRC: "NulByteInPayload"},
		{name: "nul in unknown param", body: `{"prompt":"hi","params":{"grammar":"\u0000"}}`, wantStatus: 400, wantRC: "NulByteInPayload"},
		{name: "http webhook", body: `{"prompt":"hi","webhook":"http://example.com/hook"}`, wantStatus: 400, wantRC: "BadRequest", wantMsg: "webhooks need to point to an https endpoint."},
		{name: "proxied_account from normal user", body: `{"prompt":"hi","proxied_account":"discord:1"}`, wantStatus: 400, wantRC: "OnlyServiceAccountProxy"},
		{name: "disable_batching untrusted", body: `{"prompt":"hi","disable_batching":true,"params":{"n":2}}`, wantStatus: 400, wantRC: "RequiresTrust"},
		{name: "extra source images", body: `{"prompt":"hi","extra_source_images":[{"image":"x"}]}`, wantStatus: 400, wantRC: "InvalidExtraSourceImages.", wantMsg: "This request type does not accept extra source images."},
		{name: "unknown worker", body: `{"prompt":"hi","workers":["00000000-0000-4000-8000-000000000000"]}`, wantStatus: 404, wantRC: "WorkerNotFound", wantMsg: "Worker with ID '00000000-0000-4000-8000-000000000000' not found."},
		{name: "style", body: `{"prompt":"hi","style":"my-style"}`, wantStatus: 404, wantRC: "StyleNotFound", wantMsg: "Style with ID 'my-style' not found."},
		{name: "maintenance", setup: func(h *Server) { h.SetMaintenance(true) }, body: `{"prompt":"hi"}`, wantStatus: 400, wantRC: "MaintenanceMode", wantMsg: "AI Horde has entered maintenance mode."},
		{name: "deleted user", setup: func(h *Server) { h.AddUser(User{APIKey: TestAPIKey, Username: "gone", Deleted: true}) }, body: `{"prompt":"hi"}`, wantStatus: 403, wantRC: "DeletedUser"},
		{name: "maintenance before key check", setup: func(h *Server) { h.SetMaintenance(true) }, apikey: "nope", body: `{"prompt":"hi"}`, wantStatus: 400, wantRC: "MaintenanceMode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newQuiet(t)
			if tt.setup != nil {
				tt.setup(h)
			}
			key := tt.apikey
			if key == "" && !strings.Contains(tt.name, "empty key") {
				key = TestAPIKey
			}
			header := hdr("apikey", key)
			r := call(t, h, http.MethodPost, "/v2/generate/text/async", tt.body, header)
			msg, rc, _ := r.errBody(t)
			if r.status != tt.wantStatus || rc != tt.wantRC {
				t.Fatalf("got %d %q (%s), want %d %q", r.status, rc, msg, tt.wantStatus, tt.wantRC)
			}
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q does not contain %q", msg, tt.wantMsg)
			}
			if len(h.RequestIDs()) != 0 {
				t.Error("rejected submit was queued")
			}
		})
	}
}

func TestSubmitAcceptedVariants(t *testing.T) {
	h := newQuiet(t, WithUsers(
		User{APIKey: "service", Service: true, Kudos: 100},
		User{APIKey: "trusted", Trusted: true, Kudos: 100},
		User{APIKey: "patron", Patron: true},
	))
	w := h.AddWorker(Worker{Name: "w", Models: []string{"m-7B"}})
	tests := []struct {
		name   string
		apikey string
		body   string
	}{
		{"service sends proxied_account", "service", `{"prompt":"hi","proxied_account":"discord:1"}`},
		{"trusted disables batching", "trusted", `{"prompt":"hi","disable_batching":true,"params":{"n":2}}`},
		{"patron disables batching", "patron", `{"prompt":"hi","disable_batching":true,"params":{"n":2}}`},
		{"batching with n=1", TestAPIKey, `{"prompt":"hi","disable_batching":true}`},
		{"empty extra_source_images", TestAPIKey, `{"prompt":"hi","extra_source_images":[]}`},
		{"empty proxied_account", TestAPIKey, `{"prompt":"hi","proxied_account":""}`},
		{"known worker", TestAPIKey, `{"prompt":"hi","workers":["` + w.ID + `"]}`},
		{"sixth worker id is dropped", TestAPIKey, `{"prompt":"hi","workers":["` + w.ID + `","` + w.ID + `","` + w.ID + `","` + w.ID + `","` + w.ID + `","unknown"]}`},
		{"duplicate stop sequences count once", TestAPIKey, `{"prompt":"hi","params":{"stop_sequence":["` + strings.Repeat("a", 1500) + `","` + strings.Repeat("a", 1500) + `"]}}`},
		{"https webhook", TestAPIKey, `{"prompt":"hi","webhook":"https://example.com/hook"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := submitAs(t, h, tt.apikey, tt.body)
			if r.status != http.StatusAccepted {
				t.Fatalf("status %d body %s", r.status, r.body)
			}
		})
	}
	info, _ := h.Request(h.RequestIDs()[0])
	if info.ProxiedAccount != "discord:1" {
		t.Errorf("proxied_account stored as %q", info.ProxiedAccount)
	}
}

func TestSubmitMalformedBodies(t *testing.T) {
	h := newQuiet(t)
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantMsg     string
	}{
		{"missing apikey", "application/json", `{"prompt":"hi"}`, 400, "Input payload validation failed"},
		{"not json", "application/json", `{"prompt":`, 400, "Failed to decode JSON object"},
		{"wrong content type", "text/plain", `{"prompt":"hi"}`, 415, "Content-Type was not 'application/json'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := hdr("Content-Type", tt.contentType)
			if tt.name != "missing apikey" {
				header.Set("apikey", TestAPIKey)
			}
			r := call(t, h, http.MethodPost, "/v2/generate/text/async", tt.body, header)
			msg, rc, errs := r.errBody(t)
			if r.status != tt.wantStatus || !strings.Contains(msg, tt.wantMsg) || rc != "" {
				t.Fatalf("got %d %q rc %q", r.status, msg, rc)
			}
			if tt.name == "missing apikey" && errs["apikey"] != "The API Key corresponding to a registered user. Missing required parameter in the HTTP headers" {
				t.Errorf("errors = %v", errs)
			}
		})
	}
}
