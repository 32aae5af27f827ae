package hordeapi

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// FuzzDecodeResponses decodes arbitrary bytes as every Horde answer
// hordechat reads (text status, workers, models, user details, webhook
// payloads) through the lenient decoders, and calls the helpers that read
// the decoded values: none of it may panic.
func FuzzDecodeResponses(f *testing.F) {
	seeds := []string{
		``,
		`null`,
		`{}`,
		`[]`,
		`"text"`,
		`42`,
		`{"finished":1,"processing":0,"restarted":0,"waiting":0,"done":true,"faulted":false,"wait_time":0,"queue_position":0,"kudos":12.5,"is_possible":true,` +
			`"generations":[{"text":"Hello there!","seed":1234567890123,"worker_id":"b9d1","worker_name":"fast-fimbul","model":"koboldcpp/Fimbulvetr-11B-v2","state":"ok",` +
			`"gen_metadata":[{"type":"censorship","value":"csam","ref":"x"}]}]}`,
		`{"generations":[{"seed":"abc"},{"seed":null},{"seed":1e400},{"seed":{"x":1}},{"seed":[1,2]},{"seed":true}]}`,
		`{"generations":[{"state":"censored"}],"kudos":"NaN","wait_time":1e20}`,
		`{"generations":null,"done":"yes"}`,
		`[{"name":"fast-fimbul","id":"w1","type":"text","online":true,"models":["koboldcpp/Fimbulvetr-11B-v2"],"max_length":512,"max_context_length":8192,` +
			`"performance":"12.5 tokens per second","threads":4,"trusted":true,"team":{"id":"t1","name":"Team"}}]`,
		`[{"name":"w","team":null},{"team":{}},{"team":"not-a-team"},{"team":{"id":5,"name":null}},{"team":{"id":`,
		`[{"performance":"NaN tokens per second"},{"performance":"+Inf tokens per second"},{"performance":"1e400"},{"performance":"-Inf"}]`,
		`[{"performance":"abc tokens per second","models":null},{"performance":"1e309 tokens per second"},{"performance":"-0 tokens per second"},{"performance":""}]`,
		`[{"name":"koboldcpp/Fimbulvetr-11B-v2","count":3,"performance":21.7,"queued":1200,"jobs":2,"eta":10000,"type":"text"}]`,
		`[{"name":null,"count":-1,"performance":-1e308,"eta":9999999999999999999}]`,
		`{"username":"operator#1","id":1,"kudos":1000000,"concurrency":30,"account_age":12345,"trusted":true,"worker_count":0,` +
			`"kudos_details":{"accumulated":1,"gifted":-2},"records":{"usage":{"tokens":5,"megapixelsteps":0.5},"fulfillment":{"text":1,"image":0}},` +
			`"active_generations":{"text":["id1","id2"],"image":[]}}`,
		`{"active_generations":{"text":null},"records":null,"kudos_details":[]}`,
		`{"text":"Hi","seed":"42","worker_id":"w","worker_name":"n","model":"m","id":"job-1","request":"req-1","kudos":3,"gen_metadata":[]}`,
		`{"text":"Hi","request":""}`,
		`{"request":"r"} {"request":"second"}`,
		`{"request":"r","seed":` + "\t" + `7 }`,
		"\xef\xbb\xbf{\"request\":\"bom\"}",
		`{"text":"\ud800\udc00\ud800","request":"r"}`,
		`{"request":"r","seed":"\u0000"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var st TextStatus
		if json.Unmarshal(b, &st) == nil {
			for i := range st.Generations {
				_ = st.Generations[i].Censored()
			}
		}
		var ar AsyncResponse
		if json.Unmarshal(b, &ar) == nil {
			_ = ar.NoWorkersWarning()
		}
		var ws []Worker
		if json.Unmarshal(b, &ws) == nil {
			for i := range ws {
				tps := ws[i].TokensPerSecond()
				if math.IsNaN(tps) || math.IsInf(tps, 0) || tps < 0 {
					t.Fatalf("worker %d: TokensPerSecond is %v for %q", i, tps, b)
				}
				_ = ws[i].Serves("koboldcpp/Fimbulvetr-11B-v2")
				_ = ws[i].Serves("")
			}
		}
		var one Worker
		_ = json.Unmarshal(b, &one)
		var team WorkerTeam
		if err := json.Unmarshal(b, &team); err != nil && json.Valid(b) {
			t.Fatalf("WorkerTeam refused valid JSON %q: %v", b, err)
		}
		var seed FlexString
		if err := json.Unmarshal(b, &seed); err != nil && json.Valid(b) {
			var s string
			if json.Unmarshal(b, &s) == nil {
				t.Fatalf("FlexString refused valid JSON string %q: %v", b, err)
			}
		}
		var ms []ActiveModel
		_ = json.Unmarshal(b, &ms)
		var ud UserDetails
		_ = json.Unmarshal(b, &ud)
		var hb Heartbeat
		_ = json.Unmarshal(b, &hb)
		var perf Performance
		_ = json.Unmarshal(b, &perf)
		var modes Modes
		_ = json.Unmarshal(b, &modes)
		var wp WebhookPayload
		_ = json.Unmarshal(b, &wp)

		p, err := DecodeWebhook(bytes.NewReader(b))
		switch {
		case err != nil && p != nil:
			t.Fatalf("DecodeWebhook(%q) returned a payload and an error %v", b, err)
		case err == nil && (p == nil || p.Request == ""):
			t.Fatalf("DecodeWebhook(%q) accepted a payload without a request id", b)
		case err != nil && err.Error() == "":
			t.Fatalf("DecodeWebhook(%q): empty error", b)
		}
	})
}
