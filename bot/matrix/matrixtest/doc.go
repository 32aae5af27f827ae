// Package matrixtest is an in-process fake Matrix homeserver for tests: an
// httptest server on 127.0.0.1 that speaks the client-server API (v3) the
// way mautrix-go v0.31 uses it, for one bot account, so that the real
// adapter (or the whole hordechat binary) can be driven end to end.
//
// # Use
//
//	hs := matrixtest.New(t) // bot @hordechat:hs.test, token matrixtest.DefaultToken
//	cfg.Homeserver, cfg.UserID, cfg.AccessToken = hs.URL(), hs.BotID(), hs.Token()
//	// ... start the adapter ...
//	dm := hs.NewDM("@alice:hs.test")
//	hs.Say(dm, "@alice:hs.test", "hello")
//	answer, err := hs.WaitBotMessage(ctx, dm, "Reply") // a message or an edit
//
// Humans are test-side: Say, Message and Post add their events directly
// (no token needed); only the bot calls the HTTP API. For end-to-end
// encryption a test user's device may call the key endpoints with a token
// of its own (AddDevice) and read its to-device events (TakeToDevice).
//
// Nothing in the fake sleeps or polls. Every change (an event, a
// membership, a redaction, a sync served or failed, uploaded keys) closes
// the channel Changed returned; Wait, WaitEvent, WaitBotMessage,
// WaitRedacted, WaitSyncs, WaitFailedSyncs and WaitLongPoll block on it
// (WaitEvent and the waits built on it watch a channel of their room
// only, so hundreds of rooms can be waited on at once) and on a context.
// Wait's condition runs without the lock and may call any method;
// WaitEvent's match runs under it and must not. /sync long-polls the same way, up to the
// client's timeout in real time.
//
// # What is faked
//
//   - Auth: "Authorization: Bearer <token>" on every endpoint but login,
//     versions and profile; otherwise 401 M_MISSING_TOKEN or
//     M_UNKNOWN_TOKEN. POST /login with m.login.password and an m.id.user
//     identifier (else 403 M_FORBIDDEN); GET /account/whoami.
//   - /sync with since tokens "s<n>" (unknown ones are 400), timeout,
//     inline or uploaded filters (only room.timeline.limit is honoured:
//     older events are dropped, limited is set, their state goes to
//     "state"), rooms.join (timeline, state: a newly joined room brings its
//     state), rooms.invite (invite_state: stripped create, name,
//     encryption and the invite), rooms.leave (the bot's leave or ban),
//     to_device, device_lists.changed, device_one_time_keys_count, and
//     unsigned.transaction_id on the bot's own events. A sync returns at
//     once when it has something for the bot, else at its timeout.
//   - Rooms: m.room.create, member and power_levels state (the first
//     member is admin at 100; the bot is at 0), joined_members, GET state
//     by type and key (403 when the bot is not joined, 404 when unset),
//     join only when invited, leave with a reason (also to decline).
//   - Sending: PUT send and redact are idempotent per access token and
//     path (transaction id), 403 when the bot is not joined. A redaction
//     is an m.room.redaction event; the redacted event's content is
//     emptied and it carries unsigned.redacted_because.
//   - Typing, profile (display name = localpart), media upload (v3 and
//     v1 paths; mxc://hs.test/...).
//   - Keys: keys/upload, query, claim (one-time keys, then the fallback
//     key), sendToDevice (to a device or "*"), for the bot and AddDevice
//     users.
//   - Faults on /sync: FailSyncs(n, f) fails the next n syncs, SyncDown(f)
//     every sync until SyncUp; f is an HTTP status (500 a Matrix error,
//     502/503/504 a proxy's HTML page, 429 M_LIMIT_EXCEEDED with
//     retry_after_ms and Retry-After) or ConnReset (the connection is
//     hijacked and closed with an RST). A long poll in flight when a
//     fault is injected fails at once. SyncCounts, WaitSyncs and
//     WaitFailedSyncs count them; LongPolls and WaitLongPoll tell when the
//     bot is idle in a long poll.
//   - Every request is recorded (Requests, CountRequests) with its body,
//     so a test can check what went over the wire (e.g. no secret).
//     A request to an endpoint the fake does not know fails the test.
//
// # What is not
//
// Federation, room versions and event signing and hashes, auth rules and
// power level checks (the bot may redact anyone; humans may post
// anywhere), history visibility, presence, receipts, account data,
// m.direct, room aliases and directory, media download, refresh tokens,
// device management, cross-signing and key backup, lazy-loaded members,
// and every filter field but the timeline limit. Membership in /sync is
// judged by the bot's current membership, not the one at each event.
package matrixtest
