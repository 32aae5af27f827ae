package bridge

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hordechat/hordechat/hordeapi"
)

// What TestFault1000JobsUnderHordeFaults asserts about every job and every
// call, and the figures it reports.

// outcome is how a job ended for its caller, an answer or an error, and
// what is wrong with how it was told (empty when nothing). Call with fr.mu
// held.
func (fr *faultRun) outcome(r *faultRig, j *faultJob) (*Result, *Error, string) {
	if !j.submit {
		if (j.res == nil) == (j.err == nil) {
			return j.res, Classify(j.err), fmt.Sprintf("Complete returned result %v and error %v", j.res, j.err)
		}
		return j.res, Classify(j.err), ""
	}
	if j.submitErr != nil {
		return nil, Classify(j.submitErr), ""
	}
	id := r.jobIDOf(j.tag)
	ds := fr.deliveries[id]
	if len(ds) == 0 {
		return nil, nil, fmt.Sprintf("job %s never delivered", id)
	}
	d := ds[0]
	switch {
	case len(ds) != 1:
		return d.Result, d.Err, fmt.Sprintf("%d deliveries, want 1", len(ds))
	case (d.Result == nil) == (d.Err == nil):
		return d.Result, d.Err, fmt.Sprintf("delivery with result %v and error %v", d.Result, d.Err)
	// Await tells the caller what the delivery says, unless the job had
	// already ended when Await looked for it.
	case j.awaitErr != nil && strings.Contains(j.awaitErr.Error(), "not in flight"):
	case d.Result != nil && j.awaitRes != d.Result:
		return d.Result, d.Err, fmt.Sprintf("Await returned %v, %v; the delivery had the answer", j.awaitRes, j.awaitErr)
	case d.Err != nil && (j.awaitErr == nil || Classify(j.awaitErr).Code != d.Err.Code):
		return d.Result, d.Err, fmt.Sprintf("Await returned %v; the delivery had %s", j.awaitErr, d.Err.Code)
	}
	return d.Result, d.Err, ""
}

// rawError finds text that only a Go or HTTP error would contain.
var rawError = []string{"horde GET", "horde POST", "horde DELETE", "dial tcp", "connection reset", "EOF", "127.0.0.1",
	"context deadline", "context canceled", "%!", "{", "status 5", "injected", testPasskey, "fault-test-key"}

// actionable words: every error but a cancel says what to do.
var actionable = []string{"Try", "try", "Wait", "wait", "Pick", "pick", "Ask", "ask", "link", "Link"}

func checkUserMessage(t *testing.T, tag string, e *Error) {
	t.Helper()
	msg := e.Message
	if msg == "" || e.Code == "" {
		t.Errorf("job %s: error without a message: %#v", tag, e)
		return
	}
	if e.Code == CodeInternal {
		t.Errorf("job %s: internal error %q (cause %v)", tag, msg, e.Unwrap())
	}
	for _, raw := range rawError {
		if strings.Contains(msg, raw) {
			t.Errorf("job %s: message %q shows %q", tag, msg, raw)
		}
	}
	if msg[0] < 'A' || msg[0] > 'Z' || !strings.HasSuffix(msg, ".") {
		t.Errorf("job %s: message %q is not a sentence", tag, msg)
	}
	if e.Code != CodeCanceled && !slices.ContainsFunc(actionable, func(w string) bool { return strings.Contains(msg, w) }) {
		t.Errorf("job %s (%s): message %q does not say what to do", tag, e.Code, msg)
	}
}

// checkFaultRun asserts the properties every job and every call must have.
func (r *faultRig) checkFaultRun(fr *faultRun) {
	t := r.t
	t.Helper()
	fr.mu.Lock()
	defer fr.mu.Unlock()
	wire := r.wire.all()
	recs := map[string]journalRecord{}
	for _, rec := range r.journal.records() {
		if _, dup := recs[rec.Tag]; dup || rec.Tag == "" {
			t.Errorf("journal entry %s: tag %q seen twice or missing", rec.ID, rec.Tag)
		}
		recs[rec.Tag] = rec
	}

	// Horde ids per job, and the ids the Horde answered 404 for.
	idsOf := map[string][]string{}
	tagOfID := map[string]string{}
	lost := map[string]time.Time{}
	for _, c := range wire {
		if c.HordeID != "" {
			idsOf[c.Tag] = append(idsOf[c.Tag], c.HordeID)
			tagOfID[c.HordeID] = c.Tag
		}
		if c.Method == http.MethodGet && c.Status == http.StatusNotFound {
			id := c.Path[strings.LastIndexByte(c.Path, '/')+1:]
			if _, ok := lost[id]; !ok {
				lost[id] = c.At
			}
		}
	}

	// Every job ended, with an answer or a clear error, by its deadline.
	deleted, deleteTries := map[string]bool{}, map[string]int{}
	for _, c := range wire {
		if c.Method == http.MethodDelete {
			id := c.Path[strings.LastIndexByte(c.Path, '/')+1:]
			deleteTries[id]++
			if c.Status == http.StatusOK || c.Status == http.StatusNotFound {
				deleted[id] = true
			}
		}
	}
	seenDeletes := map[string]int{}
	for _, s := range r.fake.RequestsTo(http.MethodDelete, "/v2/generate/text/status/") {
		seenDeletes[s.Path[strings.LastIndexByte(s.Path, '/')+1:]]++
	}
	for _, j := range fr.jobs {
		res, e, problem := fr.outcome(r, j)
		if problem != "" {
			t.Errorf("job %s: %s", j.tag, problem)
		}
		switch {
		case res != nil:
			if len(res.Choices) == 0 || res.Choices[0].Text == "" || res.HordeID == "" {
				t.Errorf("job %s: empty answer %+v", j.tag, res)
			}
		case e != nil:
			checkUserMessage(t, j.tag, e)
		}
		rec, ok := recs[j.tag]
		if !ok {
			t.Errorf("job %s: never journaled (outcome %v)", j.tag, e)
			continue
		}
		if rec.Finished.IsZero() {
			t.Errorf("job %s: journal entry %s left unfinished", j.tag, rec.ID)
			continue
		}
		if limit := rec.Created.Add(r.cfg.JobTimeout + faultMargin); rec.Finished.After(limit) {
			t.Errorf("job %s: ended %s after its start, beyond JobTimeout %s + %s", j.tag, rec.Finished.Sub(rec.Created), r.cfg.JobTimeout, faultMargin)
		}
		if e != nil && e.Code == CodeNotPossible && rec.Finished.Sub(rec.Created) > r.cfg.JobTimeout {
			t.Errorf("job %s: not_possible only after %s", j.tag, rec.Finished.Sub(rec.Created))
		}
		// A request given up is deleted at the Horde: the fake saw the
		// DELETE, and it worked or the client used all its retries.
		if e != nil && (e.Code == CodeTimeout || e.Code == CodeNotPossible || e.Code == CodeCanceled) {
			ids := idsOf[j.tag]
			if len(ids) > 0 {
				last := ids[len(ids)-1]
				if _, gone := lost[last]; !gone && (seenDeletes[last] == 0 || !deleted[last] && deleteTries[last] < 1+hordeapi.DefaultConfig().MaxRetries) {
					var tried []string
					for _, c := range wire {
						if c.Method == http.MethodDelete && strings.HasSuffix(c.Path, "/"+last) {
							tried = append(tried, fmt.Sprintf("%s %d %v", c.At.Format(time.TimeOnly), c.Status, c.Err))
						}
					}
					t.Errorf("job %s (%s): request %s given up but not deleted at the Horde (DELETEs: %v)", j.tag, e.Code, last, tried)
				}
			}
		}
		if j.cancelled && (e == nil || e.Code != CodeCanceled) && res == nil {
			t.Errorf("job %s: cancelled, but ended with %v", j.tag, e)
		}
	}
	if n := r.journal.states()[""]; n != 0 {
		t.Errorf("%d journal entries left unfinished", n)
	}
	if n := r.svc.InFlight(); n != 0 {
		t.Errorf("%d jobs still in flight", n)
	}
	r.svc.sched.mu.Lock()
	if n := len(r.svc.sched.byID); n != 0 {
		t.Errorf("%d status watches still open", n)
	}
	r.svc.sched.mu.Unlock()

	// The fake saw exactly the attempts the client made: nothing was
	// resent below the client (Go's transport resends a GET when a reused
	// connection breaks).
	seen := r.fake.RequestsTo("", "/v2/generate/text/")
	extra := map[string]int{}
	for _, s := range seen {
		extra[s.Method]++
	}
	for _, c := range wire {
		if strings.HasPrefix(c.Path, "/api/v2/generate/text/") {
			extra[c.Method]--
		}
	}
	for m, n := range extra {
		if n != 0 {
			t.Errorf("the fake saw %+d %s text calls more than the client made", n, m)
		}
	}

	// Polite polling: never twice within 1 s for one request; the whole
	// stays within the budget (rate + burst in any 1 s window).
	polls := map[string][]time.Time{}
	var all []time.Time
	for _, s := range seen {
		if s.Method != http.MethodGet {
			continue
		}
		id := s.Path[strings.LastIndexByte(s.Path, '/')+1:]
		polls[id] = append(polls[id], s.Time)
		all = append(all, s.Time)
	}
	for id, ts := range polls {
		sort.Slice(ts, func(a, b int) bool { return ts[a].Before(ts[b]) })
		if g := schedMinGap(ts); g < time.Second {
			var got []string
			for _, c := range wire {
				if c.Method == http.MethodGet && strings.HasSuffix(c.Path, "/"+id) {
					got = append(got, fmt.Sprintf("%s %d %v", c.At.Format("15:04:05.000"), c.Status, c.Err))
				}
			}
			var srv []string
			for _, t := range ts {
				srv = append(srv, t.Format("15:04:05.000"))
			}
			t.Errorf("request %s (job %s) polled twice within %s; client %v; server %v", id, tagOfID[id], g, got, srv)
		}
	}
	rate := r.cfg.StatusCallsPerSecond
	burst := max(1, math.Floor(rate/10))
	if got, limit := schedMaxInWindow(all, time.Second), int(rate+burst-1); got > limit {
		t.Errorf("%d status calls in one second; the budget allows %d", got, limit)
	}

	// Retry-After is honoured: after a 429, nothing goes to the same
	// limiter key (method, path, identity) until it expired.
	for _, c := range wire {
		if c.Status != http.StatusTooManyRequests || c.RetryAfter <= 0 {
			continue
		}
		n := 0
		for _, s := range seen {
			if s.Method == c.Method && s.Path == c.Path && s.Identity == c.Identity && !s.Time.Before(c.At) && s.Time.Before(c.At.Add(c.RetryAfter)) {
				n++
			}
		}
		if n > 1 {
			t.Errorf("%s %s by %s: %d calls within the %s Retry-After of a 429 at %s", c.Method, c.Path, c.Identity, n-1, c.RetryAfter, c.At.Format(time.TimeOnly))
		}
	}
	// The fake's own limits were never hit: every 429 was injected.
	for _, c := range wire {
		if c.Status == http.StatusTooManyRequests && !c.Injected {
			t.Errorf("%s %s at %s: 429 %s %q not injected", c.Method, c.Path, c.At.Format(time.TimeOnly), c.RC, c.Message)
		}
	}

	// Submits per job: one, plus a resubmit after the Horde lost the
	// request, plus resends of a submit the Horde provably did not take.
	attempts := map[string][]wireCall{}
	for _, c := range wire {
		if c.Method == http.MethodPost {
			attempts[c.Tag] = append(attempts[c.Tag], c)
		}
	}
	for tag, cs := range attempts {
		accepted := 0
		for k, c := range cs {
			if c.HordeID != "" {
				accepted++
			}
			if k == 0 {
				continue
			}
			prev := cs[k-1]
			lostAt, wasLost := lost[prev.HordeID]
			switch {
			case prev.limiter429(), dialFailedErr(prev.Err):
			case prev.HordeID != "" && wasLost && !lostAt.After(c.At):
			default:
				t.Errorf("job %s: submit %d at %s after %s (status %d, err %v): not a permitted resend", tag, k+1, c.At.Format(time.TimeOnly), prev.At.Format(time.TimeOnly), prev.Status, prev.Err)
			}
		}
		if accepted > 1+r.cfg.ResubmitLost {
			t.Errorf("job %s: %d submits accepted", tag, accepted)
		}
	}
}

// faultFigures summarise a run.
type faultFigures struct {
	outcomes              map[string]int
	byModel               map[string]int
	pollsMean             float64
	pollsMax              int
	maxWindow             int
	submits, accepted     int
	injected              map[string]int
	cancelled, awaitLate  int
	lastEnd               time.Time
	longest               time.Duration // the longest job, journaled to finished
	stages                [5]int64
	deletes, deleteFailed int
	deleteGaveUp          int // requests whose every DELETE attempt failed
}

func (f faultFigures) String() string {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range f.outcomes {
			if !yield(k) {
				return
			}
		}
	})
	var b strings.Builder
	b.WriteString("outcomes:")
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, f.outcomes[k])
	}
	fmt.Fprintf(&b, "; status calls per job mean %.2f max %d; max status calls in 1 s %d", f.pollsMean, f.pollsMax, f.maxWindow)
	fmt.Fprintf(&b, "; submits %d (accepted %d); DELETEs %d (failed %d; requests left at the Horde after all retries failed %d); injected answers %v", f.submits, f.accepted, f.deletes, f.deleteFailed, f.deleteGaveUp, f.injected)
	fmt.Fprintf(&b, "; longest job %s", f.longest)
	fmt.Fprintf(&b, "; cancelled by the scenario %d; Await after the end %d", f.cancelled, f.awaitLate)
	fmt.Fprintf(&b, "; by model %v", f.byModel)
	fmt.Fprintf(&b, "; progress queued/processing/retrying/done/failed %v", f.stages)
	return b.String()
}

func (r *faultRig) figures(fr *faultRun) faultFigures {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	f := faultFigures{outcomes: map[string]int{}, injected: map[string]int{}, byModel: map[string]int{}}
	for _, j := range fr.jobs {
		res, e, _ := fr.outcome(r, j)
		switch {
		case res != nil:
			f.outcomes["answer"]++
			f.byModel[j.model+" answer"]++
		case e != nil:
			f.outcomes[string(e.Code)]++
			f.byModel[j.model+" "+string(e.Code)]++
		}
		if j.cancelled {
			f.cancelled++
		}
		if j.awaitErr != nil && strings.Contains(j.awaitErr.Error(), "not in flight") {
			f.awaitLate++
		}
	}
	for _, rec := range r.journal.records() {
		if rec.Finished.After(f.lastEnd) {
			f.lastEnd = rec.Finished
		}
		f.longest = max(f.longest, rec.Finished.Sub(rec.Created))
	}
	tagOfID := map[string]string{}
	failedDeletes, cancelledIDs := map[string]bool{}, map[string]bool{}
	wire := r.wire.all()
	for _, c := range wire {
		switch {
		case c.Method == http.MethodPost:
			f.submits++
			if c.HordeID != "" {
				f.accepted++
				tagOfID[c.HordeID] = c.Tag
			}
		case c.Method == http.MethodDelete:
			f.deletes++
			id := c.Path[strings.LastIndexByte(c.Path, '/')+1:]
			if c.Status != http.StatusOK && c.Status != http.StatusNotFound {
				f.deleteFailed++
				failedDeletes[id] = true
			} else {
				delete(failedDeletes, id)
				cancelledIDs[id] = true
			}
		}
		switch {
		case c.Injected:
			f.injected[fmt.Sprintf("%s %d", c.Method, c.Status)]++
		case c.Err != nil:
			f.injected[c.Method+" reset"]++
		}
	}
	for id := range failedDeletes {
		if !cancelledIDs[id] {
			f.deleteGaveUp++
		}
	}
	perJob := map[string]int{}
	var all []time.Time
	for _, s := range r.fake.RequestsTo(http.MethodGet, "/v2/generate/text/status/") {
		perJob[tagOfID[s.Path[strings.LastIndexByte(s.Path, '/')+1:]]]++
		all = append(all, s.Time)
	}
	total := 0
	for _, n := range perJob {
		total += n
		f.pollsMax = max(f.pollsMax, n)
	}
	f.pollsMean = float64(total) / float64(len(fr.jobs))
	f.maxWindow = schedMaxInWindow(all, time.Second)
	for i := range f.stages {
		f.stages[i] = fr.stages[i].Load()
	}
	return f
}
