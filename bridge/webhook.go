package bridge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"

	"github.com/hordechat/hordechat/hordeapi"
)

// WebhookPath is where the built-in HTTP server takes the Horde's result
// posts: WebhookPath + <job id> + "/" + <mac>.
const WebhookPath = "/horde/webhook/"

// maxWebhookBody bounds one posted generation.
const maxWebhookBody = 1 << 20

// webhooks receives the Horde's posts. Each job gets its own URL with a MAC
// of its id, so a forged post for another job is rejected without any
// shared secret in the URL; replays are ignored by the scheduler, which
// counts each Horde job id once.
type webhooks struct {
	base    string
	key     []byte
	sched   *Scheduler
	hordeID func(jobID string) (string, bool) // the job's current Horde request
	log     *slog.Logger
}

func newWebhooks(base string, secret []byte, sched *Scheduler, hordeID func(string) (string, bool), log *slog.Logger) *webhooks {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("hordechat webhook key v1"))
	return &webhooks{base: strings.TrimRight(base, "/"), key: mac.Sum(nil), sched: sched, hordeID: hordeID, log: log}
}

func (w *webhooks) mac(jobID string) string {
	m := hmac.New(sha256.New, w.key)
	m.Write([]byte(jobID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// url is the webhook URL for a job.
func (w *webhooks) url(jobID string) string {
	return w.base + WebhookPath + jobID + "/" + w.mac(jobID)
}

func (w *webhooks) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(rw, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, WebhookPath)
	jobID, mac, ok := strings.Cut(rest, "/")
	if !ok || jobID == "" || !hmac.Equal([]byte(mac), []byte(w.mac(jobID))) {
		w.log.Warn("webhook with a bad signature rejected", "remote", r.RemoteAddr)
		http.NotFound(rw, r)
		return
	}
	p, err := hordeapi.DecodeWebhook(http.MaxBytesReader(rw, r.Body, maxWebhookBody))
	if err != nil {
		http.Error(rw, "bad payload", http.StatusBadRequest)
		return
	}
	// A URL is good for its own job's request only.
	if id, ok := w.hordeID(jobID); !ok || id != p.Request || !w.sched.Deliver(p) {
		// Unknown, finished or replayed: acknowledge so the Horde stops.
		w.log.Debug("webhook ignored", "job", jobID, "horde_id", p.Request)
	}
	rw.WriteHeader(http.StatusNoContent)
}

// newJobID returns a random 128-bit job id.
func newJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
