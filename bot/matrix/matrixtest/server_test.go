package matrixtest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/hordechat/hordechat/bot/matrix/matrixtest"
)

const alice = "@alice:hs.test"

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard only
	t.Cleanup(cancel)
	return ctx
}

// client is a mautrix client logged in as the fake's bot.
func client(t *testing.T, hs *matrixtest.Server) *mautrix.Client {
	cli, err := mautrix.NewClient(hs.URL(), id.UserID(hs.BotID()), hs.Token())
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

func TestSyncDeliversSendsAndRedactsLikeAHomeserver(t *testing.T) {
	t.Parallel()
	hs := matrixtest.New(t)
	cli := client(t, hs)
	ctx := testCtx(t)
	dm := hs.NewDM(alice)
	q := hs.Say(dm, alice, "hello")

	first, err := cli.SyncRequest(ctx, 0, "", `{"room":{"timeline":{"limit":1}}}`, false, event.PresenceOnline)
	if err != nil {
		t.Fatal(err)
	}
	jr := first.Rooms.Join[id.RoomID(dm)]
	if jr == nil || len(jr.Timeline.Events) != 1 || !jr.Timeline.Limited || jr.Timeline.Events[0].ID != id.EventID(q) {
		t.Fatalf("initial sync with limit 1: %+v", jr)
	}
	if len(jr.State.Events) == 0 {
		t.Error("the dropped state did not go to state")
	}

	resp, err := cli.SendMessageEvent(ctx, id.RoomID(dm), event.EventMessage, &event.MessageEventContent{MsgType: event.MsgNotice, Body: "hi"},
		mautrix.ReqSendEvent{TransactionID: "txn1"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := cli.SendMessageEvent(ctx, id.RoomID(dm), event.EventMessage, &event.MessageEventContent{MsgType: event.MsgNotice, Body: "hi"},
		mautrix.ReqSendEvent{TransactionID: "txn1"})
	if err != nil || again.EventID != resp.EventID {
		t.Errorf("a repeated transaction made %v (%v), want the same event %s", again, err, resp.EventID)
	}
	if _, err := cli.RedactEvent(ctx, id.RoomID(dm), id.EventID(q), mautrix.ReqRedact{Reason: "secret"}); err != nil {
		t.Fatal(err)
	}
	next, err := cli.SyncRequest(ctx, 30000, first.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	tl := next.Rooms.Join[id.RoomID(dm)].Timeline.Events
	if len(tl) != 2 || tl[0].ID != resp.EventID || tl[0].Unsigned.TransactionID != "txn1" || tl[1].Type != event.EventRedaction || tl[1].Redacts != id.EventID(q) {
		t.Fatalf("incremental sync timeline: %+v", tl)
	}
	e, _ := hs.Event(q)
	if !e.Redacted() || e.RedactReason != "secret" || e.Body() != "" {
		t.Errorf("redacted event: %+v", e)
	}
	if n := hs.CountRequests("PUT", "/_matrix/client/v3/rooms/*/send/*/*"); n != 2 {
		t.Errorf("CountRequests of sends = %d, want 2", n)
	}
	if got := hs.BotMessages(dm); len(got) != 1 || got[0].Shown() != "hi" {
		t.Errorf("BotMessages = %+v", got)
	}
}

func TestInviteJoinAndDecline(t *testing.T) {
	t.Parallel()
	hs := matrixtest.New(t)
	cli := client(t, hs)
	ctx := testCtx(t)
	room := hs.Invite(alice)
	resp, err := cli.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	inv := resp.Rooms.Invite[id.RoomID(room)]
	if inv == nil || len(inv.State.Events) == 0 || inv.State.Events[len(inv.State.Events)-1].Sender != alice {
		t.Fatalf("invite = %+v", inv)
	}
	if _, err := cli.JoinRoomByID(ctx, id.RoomID(room)); err != nil {
		t.Fatal(err)
	}
	next, err := cli.SyncRequest(ctx, 0, resp.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if jr := next.Rooms.Join[id.RoomID(room)]; jr == nil || len(jr.State.Events)+len(jr.Timeline.Events) < 3 {
		t.Errorf("a newly joined room without its state: %+v", jr)
	}
	members, err := cli.JoinedMembers(ctx, id.RoomID(room))
	if err != nil || len(members.Joined) != 2 {
		t.Errorf("joined members %v, %v", members, err)
	}
	other := hs.Invite("@eve:evil.test")
	if _, err := cli.LeaveRoom(ctx, id.RoomID(other), &mautrix.ReqLeave{Reason: "no"}); err != nil {
		t.Fatal(err)
	}
	if r, ok := hs.LeaveReason(other, hs.BotID()); !ok || r != "no" || hs.Membership(other, hs.BotID()) != "leave" {
		t.Errorf("decline: %q %v %s", r, ok, hs.Membership(other, hs.BotID()))
	}
	if _, err := cli.SendText(ctx, id.RoomID(other), "hi"); !errors.Is(err, mautrix.MForbidden) {
		t.Errorf("sending into a room the bot left = %v, want M_FORBIDDEN", err)
	}
}

func TestSyncFaults(t *testing.T) {
	t.Parallel()
	hs := matrixtest.New(t)
	cli := client(t, hs)
	ctx := testCtx(t)
	sync := func() error {
		_, err := cli.SyncRequest(ctx, 0, "", "", false, "")
		return err
	}
	status := func(err error) int {
		var he mautrix.HTTPError
		if !errors.As(err, &he) || he.Response == nil {
			return 0
		}
		return he.Response.StatusCode
	}

	hs.FailSyncs(1, matrixtest.SyncFault{Status: 502})
	hs.FailSyncs(1, matrixtest.SyncFault{Status: 500})
	hs.FailSyncs(1, matrixtest.RateLimited(1500*time.Millisecond))
	if err := sync(); status(err) != 502 {
		t.Errorf("502: %v", err)
	}
	if err := sync(); status(err) != 500 || !strings.Contains(err.Error(), "M_UNKNOWN") {
		t.Errorf("500: %v", err)
	}
	err := sync()
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response.StatusCode != 429 || he.RespError.ExtraData["retry_after_ms"] != 1500.0 || he.Response.Header.Get("Retry-After") != "2" {
		t.Errorf("429: %v", err)
	}
	if err := sync(); err != nil {
		t.Errorf("after the queued faults: %v", err)
	}

	hs.SyncDown(matrixtest.ConnReset)
	for range 3 {
		if err := sync(); err == nil || status(err) != 0 {
			t.Errorf("reset: %v, want an error without an answer", err)
		}
	}
	hs.SyncUp()
	if err := sync(); err != nil {
		t.Errorf("after SyncUp: %v", err)
	}
	if ok, failed := hs.SyncCounts(); ok != 2 || failed < 6 { // the transport may retry a reset GET
		t.Errorf("counts ok %d failed %d, want 2 and at least 6", ok, failed)
	}
}

func TestFaultFailsTheLongPollInFlight(t *testing.T) {
	t.Parallel()
	hs := matrixtest.New(t)
	cli := client(t, hs)
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() {
		_, err := cli.SyncRequest(ctx, 60000, "s0", "", false, "")
		done <- err
	}()
	if err := hs.WaitLongPoll(ctx); err != nil {
		t.Fatal(err)
	}
	hs.SyncDown(matrixtest.SyncFault{Status: 503})
	if err := <-done; err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Errorf("the long poll ended with %v, want HTTP 503", err)
	}
	if err := hs.WaitFailedSyncs(ctx, 1); err != nil {
		t.Fatal(err)
	}
}

func TestManyRoomsAreWaitedOnAtOnce(t *testing.T) {
	t.Parallel()
	hs := matrixtest.New(t)
	ctx := testCtx(t)
	const n = 300
	rooms := make([]string, n)
	for i := range rooms {
		rooms[i] = hs.NewDM(fmt.Sprintf("@user%d:hs.test", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, room := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprintf("message %d", i)
			e, err := hs.WaitEvent(ctx, room, want, func(e matrixtest.Event) bool { return e.Body() == want })
			if err == nil && e.Room != room {
				err = fmt.Errorf("%s came from %s", want, e.Room)
			}
			errs <- err
		}()
	}
	for i, room := range rooms {
		hs.Say(room, fmt.Sprintf("@user%d:hs.test", i), fmt.Sprintf("message %d", i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestCurrentTextFollowsEdits(t *testing.T) {
	t.Parallel()
	hs := matrixtest.New(t)
	cli := client(t, hs)
	ctx := testCtx(t)
	dm := hs.NewDM(alice)
	orig, err := cli.SendText(ctx, id.RoomID(dm), "draft")
	if err != nil {
		t.Fatal(err)
	}
	c := &event.MessageEventContent{MsgType: event.MsgText, Body: "* final", NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "final"},
		RelatesTo: &event.RelatesTo{Type: event.RelReplace, EventID: orig.EventID}}
	if _, err := cli.SendMessageEvent(ctx, id.RoomID(dm), event.EventMessage, c); err != nil {
		t.Fatal(err)
	}
	if got := hs.CurrentText(orig.EventID.String()); got != "final" {
		t.Errorf("CurrentText = %q, want the edit", got)
	}
	e, err := hs.WaitBotMessage(ctx, dm, "final")
	if err != nil || e.Replaces() != orig.EventID.String() {
		t.Errorf("WaitBotMessage = %+v, %v", e, err)
	}
}
