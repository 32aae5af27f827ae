package hordetest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// resp is a decoded HTTP answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		tb.Fatalf("decode %q: %v", r.body, err)
	}
}

// object decodes the body as a JSON object.
func (r resp) object(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	r.decode(tb, &m)
	return m
}

// errBody decodes {"message", "rc", "errors"}.
func (r resp) errBody(tb testing.TB) (msg, rc string, errs map[string]string) {
	tb.Helper()
	var b struct {
		Message string            `json:"message"`
		RC      *string           `json:"rc"`
		Errors  map[string]string `json:"errors"`
	}
	r.decode(tb, &b)
	if b.RC != nil {
		rc = *b.RC
	}
	return b.Message, rc, b.Errors
}

// hdr builds headers from key/value pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// call sends a request to path (relative to the /api base) and reads the
// whole answer.
func call(tb testing.TB, h *Server, method, path, body string, header http.Header) resp {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// submitAs posts a submit body with an apikey (and extra headers).
func submitAs(tb testing.TB, h *Server, apikey, body string, extra ...string) resp {
	tb.Helper()
	header := hdr(extra...)
	if apikey != "" {
		header.Set("apikey", apikey)
	}
	return call(tb, h, http.MethodPost, "/v2/generate/text/async", body, header)
}

// mustSubmit submits as TestAPIKey and returns the new request id.
func mustSubmit(tb testing.TB, h *Server, body string, extra ...string) string {
	tb.Helper()
	return mustSubmitAs(tb, h, TestAPIKey, body, extra...)
}

func mustSubmitAs(tb testing.TB, h *Server, apikey, body string, extra ...string) string {
	tb.Helper()
	r := submitAs(tb, h, apikey, body, extra...)
	if r.status != http.StatusAccepted {
		tb.Fatalf("submit: status %d body %s", r.status, r.body)
	}
	var out struct {
		ID string `json:"id"`
	}
	r.decode(tb, &out)
	return out.ID
}

// getStatus GETs a request's status over HTTP.
func getStatus(tb testing.TB, h *Server, id string, extra ...string) (Status, resp) {
	tb.Helper()
	r := call(tb, h, http.MethodGet, "/v2/generate/text/status/"+id, "", hdr(extra...))
	var st Status
	if r.status == http.StatusOK {
		r.decode(tb, &st)
	}
	return st, r
}

// mustStatus is Server.Status that fails the test for an unknown id.
func mustStatus(tb testing.TB, h *Server, id string) Status {
	tb.Helper()
	st, ok := h.Status(id)
	if !ok {
		tb.Fatalf("request %s not found", id)
	}
	return st
}

// fixedResponder answers exactly max_length tokens of "x" (4 chars a token),
// so that a job lasts max_length/speed seconds.
func fixedResponder(j Job) string { return strings.Repeat("x", j.MaxLength*4) }

// newQuiet is a fake without default workers, rate limits or fuss.
func newQuiet(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	base := []Option{WithWorkers(), WithoutRateLimits(), WithResponder(fixedResponder)}
	return New(tb, append(base, opts...)...)
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func equalJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return bytes.Equal(mustMarshal(x), mustMarshal(y))
}

func mustMarshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
