// Package hordetest is an in-process fake AI Horde for tests: an HTTP server
// that behaves like the real text API as horde-api.md describes it, with a
// simulated queue of workers on a controllable clock.
//
// It decodes and validates requests with its own wire structs, written from
// horde-api.md, and never imports package hordeapi, so that a client
// encoding bug is caught here instead of being hidden by shared types.
//
// # Use
//
//	h := hordetest.New(t)                  // httptest server, fake clock, default workers
//	client := hordeapi.New(h.URL, ...)     // h.URL ends in "/api"
//	id := submit(...)
//	st, err := h.AdvanceUntilDone(id, 10*time.Minute)
//
// Time only moves when the test says so: Advance moves the fake clock and
// replays every job start, finish, TTL abort, priority ageing step and
// cleanup tick in time order, so Advance(90*time.Second) equals ninety
// Advance(time.Second) calls. A shared clockwork.FakeClock can be passed with
// WithClock; after moving it directly, call Sync (any request to the fake
// also catches up). Webhooks are delivered on their own goroutine, never
// under the fake's lock; FlushWebhooks waits for them. NewServer with a real
// clock drives itself with a background ticker (see cmd/fakehorde).
//
// # What is simulated
//
//   - POST /v2/generate/text/async with Flask-RESTX schema validation
//     (type and range errors keyed like "params.max_length"), reqparse's
//     missing-apikey error, and the Horde's checks with their rc codes, in
//     the order the server runs them. dry_run answers 200 {"kudos": N} from
//     the §3.3 estimate.
//   - Upfront kudos (T from online threads and queued jobs), allow_downgrade,
//     per-account concurrency (TooManyPrompts), IP timeouts, rate limits in
//     fixed windows per identity, per key, and per (identity, status path).
//   - Client identity: the peer address, replaced by Proxied-For only when
//     Proxy-Authorization equals Options.Passkey exactly.
//   - A priority queue (kudos at submit, +50 per 10 s waiting) served by
//     workers that fit the request (models, lengths, trusted, whitelist or
//     blacklist, validated backends, slow workers, softprompt). A job lasts
//     tokens/speed seconds; after 150 s it is aborted and re-queued, and
//     more than two failed jobs fault the request. Requests expire 20 min
//     after their last activity and a 60 s cleanup deletes them.
//   - Status with queue_position and wait_time computed as
//     WaitingPrompt.get_status does, is_possible cached 60 s, a 1 s body
//     cache, DELETE semantics, webhooks per finished job.
//   - /workers, /status/models[/{name}], /find_user (30 s cache),
//     /status/heartbeat, /status/performance, /status/modes; Flask's JSON
//     404 and 405 elsewhere.
//   - Fault injection (Inject, FaultJobs, Vanish, SetWorkerOnline,
//     RemoveWorker, SetMaintenance, TimeoutIP) and a record of every request.
//
// # Choices and deviations
//
//   - Model sizes come from the model name ("13B", "7b", "8x7B" = 56); a name
//     without one counts as 2.7B, the size the Horde assumes for an unknown
//     model. The dry-run estimate uses the first model (13B without models);
//     upfront kudos use the largest.
//   - An honoured Proxied-For that is not an IP or is longer than 39
//     characters fails submits with 500 by default (Options.LenientProxiedFor
//     turns that off); the real Horde does so while an IP-block timeout is
//     active, which is normal in production.
//   - queue_position is the 1-based rank among waiting requests and 0 once
//     nothing of the request waits, as the server computes it.
//   - done is true when the request faulted or nothing of it is waiting or
//     processing; a faulted or cancelled request does not re-queue jobs.
//   - DELETE answers the status as it was just before the cancel.
//   - A worker that drops out (SetWorkerOnline false) stays listed and
//     counts for is_possible until its last check-in is 300 s old, as on
//     the real Horde; RemoveWorker makes it vanish at once.
//   - Workers pick jobs up the instant a thread is free (real workers poll
//     every second or so). The /workers 30 s cache, dry-run quote cache,
//     shared keys, styles (every style is unknown) and image endpoints are
//     not simulated. Deleting or vanishing a request drops its status cache.
//   - Retry-After is rounded up to whole seconds, never 0.
package hordetest
