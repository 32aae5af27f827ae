package hordeapi

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Sentinels for the Horde errors callers act on. Match them with errors.Is
// against any error the Client returns.
var (
	// ErrInvalidKey: the apikey is unknown to the Horde (401 InvalidAPIKey).
	ErrInvalidKey = errors.New("horde rejected the api key")
	// ErrRateLimited: the Horde's rate limiter refused the call (429 without
	// an rc); APIError.RetryAfter says when to try again.
	ErrRateLimited = errors.New("horde rate limit reached")
	// ErrNotFound: the request expired or never existed (404 RequestNotFound,
	// UserNotFound and friends).
	ErrNotFound = errors.New("horde request not found or expired")
	// ErrKudosUpfront: the request needs kudos the account does not have
	// (403 KudosUpfront, SharedKeyInsufficientKudos).
	ErrKudosUpfront = errors.New("horde requires kudos upfront")
	// ErrTooManyPrompts: the account has too many queued jobs (429 TooManyPrompts).
	ErrTooManyPrompts = errors.New("too many parallel horde requests")
	// ErrIPTimeout: the caller's address is in a Horde timeout (403 TimeoutIP).
	ErrIPTimeout = errors.New("horde has put the caller in a timeout")
	// ErrMaintenance: the Horde is in maintenance mode.
	ErrMaintenance = errors.New("horde is in maintenance")
	// ErrInvalidRequest: the Horde rejected the request body (400 with a
	// validation error map, or an rc for a bad value).
	ErrInvalidRequest = errors.New("horde rejected the request")
	// ErrUnavailable: the Horde answered 5xx or could not be reached after
	// the retries allowed.
	ErrUnavailable = errors.New("horde unavailable")
)

// APIError is a non-2xx answer of the Horde.
type APIError struct {
	Method     string            // HTTP method
	Endpoint   string            // path template, e.g. /v2/generate/text/status/{id}
	Status     int               // HTTP status
	RC         string            // the Horde's return code; empty for limiter 429s and 500s
	Message    string            // the Horde's message, with any secret of the call removed
	Errors     map[string]string // field validation errors, if any
	RetryAfter time.Duration     // from Retry-After, when given
}

// Error describes the failure without any key material.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "horde %s %s: %d", e.Method, e.Endpoint, e.Status)
	if e.RC != "" {
		b.WriteString(" ")
		b.WriteString(e.RC)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if len(e.Errors) > 0 {
		keys := make([]string, 0, len(e.Errors))
		for k := range e.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(" (")
		for i, k := range keys {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(e.Errors[k])
		}
		b.WriteString(")")
	}
	return b.String()
}

// Is maps the error to the package sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrInvalidKey:
		// find_user answers an unknown key with 404 UserNotFound.
		return e.Status == http.StatusUnauthorized || e.RC == "InvalidAPIKey" ||
			e.RC == "UserNotFound" && e.Endpoint == "/v2/find_user"
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests && e.RC == ""
	case ErrTooManyPrompts:
		return e.RC == "TooManyPrompts"
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrKudosUpfront:
		return e.RC == "KudosUpfront" || e.RC == "SharedKeyInsufficientKudos"
	case ErrIPTimeout:
		return e.RC == "TimeoutIP"
	case ErrMaintenance:
		return e.RC == "MaintenanceMode"
	case ErrInvalidRequest:
		return e.Status == http.StatusBadRequest && e.RC != "MaintenanceMode"
	case ErrUnavailable:
		return e.Status >= 500
	}
	return false
}

// Retryable reports whether the same call may succeed later unchanged.
func (e *APIError) Retryable() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// scrub removes every secret from s. Secrets shorter than 4 characters are
// left alone: they cannot be keys, and replacing them would mangle text.
func scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}
