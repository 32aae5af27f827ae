package bridge

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// notPossibleError explains why no worker took j's request for
// NotPossibleTimeout and what to do about it. The Horde only says "not
// possible"; the likely cause is read from the request and the model list
// as last refreshed (the upfront-kudos rule is refused at submit, so it is
// never the cause here).
func (s *Service) notPossibleError(j *job) *Error {
	h := j.prep.Horde
	names := strings.Join(h.Models, " or ")
	var workers, bestCtx, bestLen int
	snap := s.models.Snapshot()
	for _, mi := range snap.Models {
		if slices.Contains(h.Models, mi.Name) {
			workers += mi.Workers
			bestCtx, bestLen = max(bestCtx, mi.MaxContextLength), max(bestLen, mi.MaxLength)
		}
	}
	askedLen, askedCtx := 0, 0
	if h.Params != nil {
		askedLen, askedCtx = derefInt(h.Params.MaxLength), derefInt(h.Params.MaxContextLength)
	}
	others := s.otherModels(h.Models)

	var msg string
	switch {
	case workers == 0:
		msg = fmt.Sprintf("No worker can serve this request now: %s has no workers any more.", names)
		if others != "" {
			msg += " Switch to one of the models that have workers: " + others + "."
		} else {
			msg += " No text model has workers right now either; try again later."
		}
	case (bestLen > 0 && askedLen > bestLen) || (bestCtx > 0 && askedCtx > bestCtx):
		msg = fmt.Sprintf("No worker can serve this request now: the workers of %s allow at most %d tokens of answer and %d of context, and it asks for %d and %d.",
			names, bestLen, bestCtx, askedLen, askedCtx)
		msg += " Send it again (it is fitted to the workers online then), or ask for a shorter answer."
	case len(h.Workers) > 0 && !h.WorkerBlacklist:
		msg = "No worker can serve this request now: it may only run on the workers it names, and none of them can take it. Name other workers, or leave the workers list out."
	case len(h.Workers) > 0:
		msg = "No worker can serve this request now: the workers it leaves out are the only ones that can take it. Exclude fewer workers, or try again later."
	case h.TrustedWorkers && !s.cfg.TrustedWorkers:
		msg = fmt.Sprintf("No worker can serve this request now: it asks for trusted workers only, and none of the trusted workers of %s can take it. Send it without trusted_workers", names)
		if others != "" {
			msg += ", or switch to one of the models that have workers: " + others
		}
		msg += "."
	case h.TrustedWorkers:
		msg = fmt.Sprintf("No worker can serve this request now: this server only uses trusted workers, and none of those of %s can take it. Try again later", names)
		if others != "" {
			msg += ", or switch to one of the models that have workers: " + others
		}
		msg += "."
	default:
		msg = fmt.Sprintf("No worker can serve this request now: the workers of %s left or allow less context or answer length than it asks. Try again in a few minutes, ask for a shorter answer", names)
		if others != "" {
			msg += ", or switch to one of the models that have workers: " + others
		}
		msg += "."
	}
	return newError(CodeNotPossible, http.StatusServiceUnavailable, errNotPossible, "%s", msg)
}

// otherModels names up to five models with workers other than exclude.
func (s *Service) otherModels(exclude []string) string {
	var out []string
	for _, name := range s.models.WithWorkers(5 + len(exclude)) {
		if !slices.Contains(exclude, name) && len(out) < 5 {
			out = append(out, name)
		}
	}
	return strings.Join(out, ", ")
}
