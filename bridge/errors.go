package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hordechat/hordechat/hordeapi"
)

// Code names a class of failure, the same for a chat reply and for the
// OpenAI error JSON.
type Code string

// The failure classes callers act on.
const (
	CodeInvalidRequest Code = "invalid_request"
	CodeUnknownModel   Code = "model_not_found"
	CodeAmbiguousModel Code = "ambiguous_model"
	CodeNoWorkers      Code = "no_workers"
	CodeKudosUpfront   Code = "insufficient_kudos"
	CodeIPTimeout      Code = "horde_timeout"
	CodeInvalidKey     Code = "invalid_horde_key"
	CodeTooManyPrompts Code = "too_many_requests"
	CodeRateLimited    Code = "rate_limited"
	CodeMaintenance    Code = "horde_maintenance"
	CodeExpired        Code = "job_expired"
	CodeFaulted        Code = "job_faulted"
	CodeNotPossible    Code = "not_possible"
	CodeUnavailable    Code = "horde_unavailable"
	CodeCanceled       Code = "canceled"
	CodeTimeout        Code = "timeout"
	CodeInternal       Code = "internal_error"
)

// Error is a failure with a message safe to show the person who asked: it
// says what happened and what to do, and never contains a key.
type Error struct {
	Code       Code
	Message    string        // for the person; no secrets, no raw Horde body
	Status     int           // the HTTP status /v1 answers with
	RetryAfter time.Duration // when trying again later makes sense
	Param      string        // the request field at fault, if any
	cause      error
}

func (e *Error) Error() string { return e.Message }

// Unwrap gives the cause, for logs and errors.Is.
func (e *Error) Unwrap() error { return e.cause }

func newError(code Code, status int, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Status: status, Message: fmt.Sprintf(format, args...), cause: cause}
}

var timeoutSeconds = regexp.MustCompile(`(\d+) more seconds`)

// Classify maps any error to an *Error. It is the one place where Horde
// errors become user-facing text.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var be *Error
	if errors.As(err, &be) {
		return be
	}
	var api *hordeapi.APIError
	isAPI := errors.As(err, &api)
	switch {
	case errors.Is(err, context.Canceled):
		return newError(CodeCanceled, 499, err, "The request was cancelled. Send it again if you still want an answer.")
	case errors.Is(err, context.DeadlineExceeded):
		return newError(CodeTimeout, http.StatusGatewayTimeout, err, "The Horde did not finish in time. Try again, ask for fewer tokens, or pick a model with a shorter queue.")
	case errors.Is(err, hordeapi.ErrKudosUpfront):
		return newError(CodeKudosUpfront, http.StatusPaymentRequired, err, "The Horde is busy and wants kudos upfront for a request this long. Ask for fewer tokens, or link a Horde key that has kudos.")
	case errors.Is(err, hordeapi.ErrIPTimeout):
		e := newError(CodeIPTimeout, http.StatusForbidden, err, "The Horde has put you in a timeout. Try again later.")
		if m := timeoutSeconds.FindStringSubmatch(api.Message); m != nil {
			if s, convErr := strconv.Atoi(m[1]); convErr == nil {
				e.RetryAfter = time.Duration(s) * time.Second
				e.Message = fmt.Sprintf("The Horde has put you in a timeout for %s more. Try again after that.", humanDuration(e.RetryAfter))
			}
		}
		return e
	case errors.Is(err, hordeapi.ErrInvalidKey):
		return newError(CodeInvalidKey, http.StatusUnauthorized, err, "The Horde rejected the API key. If you linked your own key, link it again; it may have been reset.")
	case errors.Is(err, hordeapi.ErrTooManyPrompts):
		return newError(CodeTooManyPrompts, http.StatusTooManyRequests, err, "Too many of your requests are waiting at the Horde. Wait for one to finish, then try again.")
	case errors.Is(err, hordeapi.ErrRateLimited):
		e := newError(CodeRateLimited, http.StatusTooManyRequests, err, "The Horde asks to slow down. Try again in a moment.")
		if api.RetryAfter > 0 {
			e.RetryAfter = api.RetryAfter
			e.Message = fmt.Sprintf("The Horde asks to slow down. Try again in %s.", humanDuration(api.RetryAfter))
		}
		return e
	case errors.Is(err, hordeapi.ErrMaintenance):
		return newError(CodeMaintenance, http.StatusServiceUnavailable, err, "The Horde is in maintenance. Try again later.")
	case isAPI && api.RC == "WorkerNotFound":
		// A submit naming a worker the Horde does not know: not a lost request.
		e := newError(CodeInvalidRequest, http.StatusBadRequest, err, "The Horde does not know a worker the request names. Check the ids in workers, or leave the workers list out.")
		e.Param = "workers"
		return e
	case errors.Is(err, hordeapi.ErrNotFound):
		return newError(CodeExpired, http.StatusGatewayTimeout, err, "The Horde no longer knows this request (it expired or was lost). Try again.")
	case isAPI && api.Status == http.StatusBadRequest:
		return newError(CodeInvalidRequest, http.StatusBadRequest, err, "The Horde rejected the request: %s. Change that and try again; if it is not something you set, tell the operator.", strings.TrimRight(describeValidation(api), "."))
	case errors.Is(err, hordeapi.ErrUnavailable):
		return newError(CodeUnavailable, http.StatusBadGateway, err, "The Horde cannot be reached right now. Try again in a minute.")
	}
	return newError(CodeInternal, http.StatusInternalServerError, err, "Something went wrong on our side. Try again; if it keeps failing, tell the operator.")
}

// describeValidation turns the Horde's 400 into a short reason. The client
// already scrubbed keys from it.
func describeValidation(api *hordeapi.APIError) string {
	var parts []string
	for field, why := range api.Errors {
		parts = append(parts, field+": "+why)
	}
	if len(parts) == 0 {
		msg := strings.TrimSpace(api.Message)
		if msg == "" {
			msg = "invalid request"
		}
		return msg
	}
	return strings.Join(parts, "; ")
}

// humanDuration prints a wait the way a person says it.
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		s := max(int(d.Round(time.Second).Seconds()), 1)
		if s == 1 {
			return "1 second"
		}
		return fmt.Sprintf("%d seconds", s)
	case d < time.Hour:
		m := int(d.Round(time.Minute).Minutes())
		if m == 1 {
			return "1 minute"
		}
		return fmt.Sprintf("%d minutes", m)
	default:
		h := d.Hours()
		if h < 1.5 {
			return "1 hour"
		}
		return fmt.Sprintf("%.0f hours", h)
	}
}
