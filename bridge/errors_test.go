package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hordechat/hordechat/hordeapi"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		code      Code
		status    int
		retry     time.Duration
		msgHas    []string
		msgHasNot []string
	}{
		{name: "kudos upfront", err: &hordeapi.APIError{Status: 403, RC: "KudosUpfront", Message: "Due to heavy demand"}, code: CodeKudosUpfront, status: 402, msgHas: []string{"fewer tokens", "link a Horde key"}},
		{name: "ip timeout with duration", err: &hordeapi.APIError{Status: 403, RC: "TimeoutIP", Message: "Your IP address has been put into a timeout for 300 more seconds"}, code: CodeIPTimeout, status: 403, retry: 5 * time.Minute, msgHas: []string{"5 minutes"}},
		{name: "ip timeout generic", err: &hordeapi.APIError{Status: 403, RC: "TimeoutIP", Message: "timeout"}, code: CodeIPTimeout, status: 403, msgHas: []string{"Try again later"}},
		{name: "invalid key", err: &hordeapi.APIError{Status: 401, RC: "InvalidAPIKey"}, code: CodeInvalidKey, status: 401, msgHas: []string{"link it again"}},
		{name: "too many prompts", err: &hordeapi.APIError{Status: 429, RC: "TooManyPrompts"}, code: CodeTooManyPrompts, status: 429},
		{name: "limiter", err: &hordeapi.APIError{Status: 429, RetryAfter: 7 * time.Second}, code: CodeRateLimited, status: 429, retry: 7 * time.Second, msgHas: []string{"7 seconds"}},
		{name: "maintenance", err: &hordeapi.APIError{Status: 400, RC: "MaintenanceMode"}, code: CodeMaintenance, status: 503},
		{name: "unknown worker", err: &hordeapi.APIError{Status: 404, RC: "WorkerNotFound", Message: "Worker with ID 'x' not found."}, code: CodeInvalidRequest, status: 400, msgHas: []string{"workers"}},
		{name: "expired", err: &hordeapi.APIError{Status: 404, RC: "RequestNotFound"}, code: CodeExpired},
		{name: "validation", err: &hordeapi.APIError{Status: 400, Errors: map[string]string{"params.max_length": "5000 is too big"}}, code: CodeInvalidRequest, status: 400, msgHas: []string{"params.max_length"}},
		{name: "unavailable", err: fmt.Errorf("x: %w", hordeapi.ErrUnavailable), code: CodeUnavailable, status: 502},
		{name: "cancelled", err: context.Canceled, code: CodeCanceled},
		{name: "deadline", err: fmt.Errorf("poll: %w", context.DeadlineExceeded), code: CodeTimeout},
		{name: "unknown", err: errors.New("disk on fire: key=secret-123"), code: CodeInternal, status: 500, msgHasNot: []string{"secret-123", "disk"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Classify(tt.err)
			if e.Code != tt.code {
				t.Fatalf("code = %s, want %s (%s)", e.Code, tt.code, e.Message)
			}
			if tt.status != 0 && e.Status != tt.status {
				t.Errorf("status = %d, want %d", e.Status, tt.status)
			}
			if e.RetryAfter != tt.retry {
				t.Errorf("retry = %v, want %v", e.RetryAfter, tt.retry)
			}
			for _, w := range tt.msgHas {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q lacks %q", e.Message, w)
				}
			}
			for _, w := range tt.msgHasNot {
				if strings.Contains(e.Message, w) {
					t.Errorf("message %q leaks %q", e.Message, w)
				}
			}
			if !errors.Is(e, tt.err) && tt.code != CodeInternal {
				t.Errorf("cause not kept for errors.Is")
			}
			if Classify(e) != e {
				t.Error("classifying an *Error must return it unchanged")
			}
		})
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Second: "1 second", 45 * time.Second: "45 seconds", time.Minute: "1 minute",
		5 * time.Minute: "5 minutes", time.Hour: "1 hour", 5 * time.Hour: "5 hours", 300 * time.Millisecond: "1 second",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestClassifySaysWhatToDo checks that every class of failure tells the
// person what to do next, not only what went wrong.
func TestClassifySaysWhatToDo(t *testing.T) {
	errs := map[string]error{
		"cancelled":         context.Canceled,
		"deadline":          context.DeadlineExceeded,
		"kudos upfront":     &hordeapi.APIError{Status: 403, RC: "KudosUpfront"},
		"ip timeout":        &hordeapi.APIError{Status: 403, RC: "TimeoutIP", Message: "timeout"},
		"ip timeout for":    &hordeapi.APIError{Status: 403, RC: "TimeoutIP", Message: "a timeout for 30 more seconds"},
		"invalid key":       &hordeapi.APIError{Status: 401, RC: "InvalidAPIKey"},
		"too many prompts":  &hordeapi.APIError{Status: 429, RC: "TooManyPrompts"},
		"limiter":           &hordeapi.APIError{Status: 429},
		"limiter for":       &hordeapi.APIError{Status: 429, RetryAfter: 3 * time.Second},
		"maintenance":       &hordeapi.APIError{Status: 400, RC: "MaintenanceMode"},
		"expired":           &hordeapi.APIError{Status: 404, RC: "RequestNotFound"},
		"unknown worker":    &hordeapi.APIError{Status: 404, RC: "WorkerNotFound"},
		"validation":        &hordeapi.APIError{Status: 400, Errors: map[string]string{"params.top_k": "must be at most 100"}},
		"validation bare":   &hordeapi.APIError{Status: 400, Message: "Bad request."},
		"unavailable":       fmt.Errorf("x: %w", hordeapi.ErrUnavailable),
		"internal":          errors.New("boom"),
		"unavailable 5xx":   &hordeapi.APIError{Status: 503},
		"validation no msg": &hordeapi.APIError{Status: 400},
	}
	for name, err := range errs {
		msg := Classify(err).Message
		if !saysWhatToDo(msg) {
			t.Errorf("%s: %q does not say what to do", name, msg)
		}
		if strings.Contains(msg, "..") {
			t.Errorf("%s: %q has a doubled full stop", name, msg)
		}
	}
}

// saysWhatToDo reports whether msg holds an instruction.
func saysWhatToDo(msg string) bool {
	for _, verb := range []string{"Try ", "try ", "Wait ", "wait ", "Link ", "link ", "Send ", "send ", "Ask ", "ask ",
		"Switch ", "switch ", "Check ", "Change ", "change ", "tell the operator", "pick ", "Pick ", "Name ", "name "} {
		if strings.Contains(msg, verb) {
			return true
		}
	}
	return false
}
