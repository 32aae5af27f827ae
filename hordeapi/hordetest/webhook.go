package hordetest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// WebhookDelivery is one POST the fake made to a request's webhook.
type WebhookDelivery struct {
	URL       string
	RequestID string
	JobID     string
	Body      []byte    // the §1.5 payload
	At        time.Time // simulated time the job finished
	Status    int       // 0 when the POST failed
	Err       error
}

type webhookItem struct {
	url, requestID, jobID string
	body                  []byte
	at                    time.Time
}

// webhookQueue delivers webhooks in order on its own goroutine, so that the
// fake's lock is never held during a delivery.
type webhookQueue struct {
	client *http.Client

	mu        sync.Mutex
	cond      *sync.Cond
	pending   []webhookItem
	enqueued  int
	delivered int
	closed    bool
	log       []WebhookDelivery
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
}

func newWebhookQueue(client *http.Client) *webhookQueue {
	q := &webhookQueue{client: client, done: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	q.ctx, q.cancel = context.WithCancel(context.Background())
	go q.run()
	return q
}

func (q *webhookQueue) enqueue(it webhookItem) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.pending = append(q.pending, it)
	q.enqueued++
	q.cond.Broadcast()
}

func (q *webhookQueue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		for len(q.pending) == 0 && !q.closed {
			q.cond.Wait()
		}
		if q.closed {
			q.mu.Unlock()
			return
		}
		it := q.pending[0]
		q.pending = q.pending[1:]
		q.mu.Unlock()

		d := q.deliver(it)

		q.mu.Lock()
		q.log = append(q.log, d)
		q.delivered++
		q.cond.Broadcast()
		q.mu.Unlock()
	}
}

func (q *webhookQueue) deliver(it webhookItem) WebhookDelivery {
	d := WebhookDelivery{URL: it.url, RequestID: it.requestID, JobID: it.jobID, Body: it.body, At: it.at}
	req, err := http.NewRequestWithContext(q.ctx, http.MethodPost, it.url, bytes.NewReader(it.body))
	if err != nil {
		d.Err = err
		return d
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := q.client.Do(req)
	if err != nil {
		d.Err = err
		return d
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	d.Status = resp.StatusCode
	return d
}

// flush waits until everything enqueued so far has been delivered, or ctx
// ends.
func (q *webhookQueue) flush(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.cond.Broadcast()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	target := q.enqueued
	for q.delivered < target && !q.closed {
		if err := ctx.Err(); err != nil {
			return err
		}
		q.cond.Wait()
	}
	return nil
}

func (q *webhookQueue) deliveries() []WebhookDelivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]WebhookDelivery, len(q.log))
	copy(out, q.log)
	return out
}

func (q *webhookQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	q.cancel()
	<-q.done
}

// Webhooks returns the webhook deliveries completed so far, in order. Call
// FlushWebhooks first to include the ones still in flight.
func (s *Server) Webhooks() []WebhookDelivery { return s.hooks.deliveries() }

// FlushWebhooks waits until every webhook caused so far has been delivered
// (or has failed), or ctx ends. Deliveries run on their own goroutine and
// never hold the fake's lock, so a receiver may call back into the fake;
// Advance does not wait for them, so a receiver may also block on the test.
func (s *Server) FlushWebhooks(ctx context.Context) error {
	s.Sync()
	return s.hooks.flush(ctx)
}
