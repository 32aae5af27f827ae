package bridge

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A caller-chosen job id is the id the journal, the delivery and Submit
// use; an invalid or taken one is refused before anything reaches the
// Horde.
func TestSubmitWithCallerChosenJobID(t *testing.T) {
	d := &deliveries{}
	r := newSvcRig(t, rigOptions{deliverers: map[string]Deliverer{"discord": d}})
	const chosen = "0123456789abcdef0123456789abcdef"
	req := chat("hello")
	req.Target, req.JobID = "discord:chan-1", chosen
	id, err := r.svc.Submit(context.Background(), req, nil)
	if err != nil || id != chosen {
		t.Fatalf("Submit = %q, %v; want the chosen id", id, err)
	}
	if j := r.store.job(chosen); j.e.ID != chosen {
		t.Fatalf("the journal has no job %s", chosen)
	}
	if !r.until(10*time.Minute, func() bool { return len(d.all()) == 1 }) {
		t.Fatal("not delivered")
	}
	if got := d.all()[0].JobID; got != chosen {
		t.Errorf("delivered as %q, want %q", got, chosen)
	}

	for _, tt := range []struct {
		name, id string
		code     Code
	}{
		{"too short", "abc", CodeInvalidRequest},
		{"too long", strings.Repeat("a", 65), CodeInvalidRequest},
		{"not URL-safe", "0123456789abcdef/../0123456789", CodeInvalidRequest},
		{"already journaled", chosen, CodeInternal},
	} {
		t.Run(tt.name, func(t *testing.T) {
			submits := len(r.fake.RequestsTo(http.MethodPost, "/api/v2/generate/text/async"))
			req.JobID = tt.id
			if _, err := r.svc.Submit(context.Background(), req, nil); Classify(err).Code != tt.code {
				t.Fatalf("Submit error = %v, want code %s", err, tt.code)
			}
			if got := len(r.fake.RequestsTo(http.MethodPost, "/api/v2/generate/text/async")); got != submits {
				t.Errorf("the Horde got %d submits, want none", got-submits)
			}
		})
	}
}
