package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
)

// TestFaultKill9WithMessagesWaitingInTheQueue kills hordechat with SIGKILL
// while conversations hold messages that wait behind the one the Horde is
// working on (Discord threads, DMs and /chat; Matrix threads and DMs), so
// the waiting ones were never submitted. After the restart every message
// is answered exactly once, in its place, in the order asked, each asked
// with the answers before it; the jobs in flight are not submitted again;
// the history is complete and in order; the inbox ends empty.
func TestFaultKill9WithMessagesWaitingInTheQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("runs hordechat twice")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*k9Timeout)
	defer cancel()
	w := newK9World(t, 6, 3, 0, 0)
	w.addMatrix(3, 1, 0)
	first := w.start(ctx, true)
	inbox := w.openInbox(t)

	// The first message of each conversation: its job is in flight, and
	// the fake Horde's clock stands still, so it stays there.
	const rounds = 3
	type conv struct {
		first k9Turn
		next  func(tag string) k9Turn // asks the conversation's next question
	}
	var convs []conv
	add := func(first k9Turn, next func(string) k9Turn) { convs = append(convs, conv{first, next}) }
	for c := range 2 {
		th := w.mention(c, c, fmt.Sprintf("T%d00", c))
		add(th, func(tag string) k9Turn { return w.inThread(th, (c+1)%len(w.users), tag) })
	}
	for u := 2; u < 4; u++ {
		add(w.dm(u, fmt.Sprintf("D%d00", u)), func(tag string) k9Turn { return w.dm(u, tag) })
	}
	add(w.slashChat(2, 4, "S200"), func(tag string) k9Turn { return w.slashChat(2, 5, tag) })
	mth := w.mxMention(0, 0, "M000")
	add(mth, func(tag string) k9Turn { return w.mxInThread(mth, 1, tag) })
	add(w.mxDM(2, "X200"), func(tag string) k9Turn { return w.mxDM(2, tag) })

	turns := make([][]k9Turn, rounds) // turns[r]: the r-th question of every conversation
	for _, cv := range convs {
		turns[0] = append(turns[0], cv.first)
	}
	w.waitSubmitted(ctx, first, tagsOf(turns[0]))

	// The rest wait in their conversations' queues. One at a time, each
	// accepted (in the inbox) before the next is sent, so the order asked
	// is the order accepted whatever the adapters do in parallel.
	accepted := len(convs)
	for r := 1; r < rounds; r++ {
		for _, cv := range convs {
			tu := cv.next(fmt.Sprintf("%s%02d", cv.first.tag[:2], r))
			turns[r] = append(turns[r], tu)
			accepted++
			if err := k9Poll(ctx, fmt.Sprintf("%s accepted", tu.tag), func() bool { return inbox.count(t) == accepted }); err != nil {
				t.Fatalf("%v\n%s", err, first.stderr.String())
			}
		}
	}
	waiting := append(tagsOf(turns[1]), tagsOf(turns[2])...)
	for _, tag := range waiting {
		if n := w.submits()[tag]; n != 0 {
			t.Fatalf("%s was submitted before the kill, but should wait in its queue", tag)
		}
	}

	first.kill9()
	w.track()
	second := w.start(ctx, false)
	// Round by round: the Horde finishes what it has, which lets each
	// conversation's next question go.
	for r := range rounds {
		w.waitSubmitted(ctx, second, tagsOf(turns[r]))
		w.finishAll()
		for _, tu := range turns[r] {
			if err := w.waitAnswer(ctx, tu); err != nil {
				t.Fatalf("turn %s (%s) never answered after the restart: %v\n%s", tu.tag, tu.conv, err, second.stderr.String())
			}
		}
	}
	second.stop() // waits for deliveries in progress: the counts are final
	w.track()

	var all, discordTurns, matrixTurns []k9Turn
	for r := range rounds {
		for _, tu := range turns[r] {
			all = append(all, tu)
			if tu.platform == "matrix" {
				matrixTurns = append(matrixTurns, tu)
			} else {
				discordTurns = append(discordTurns, tu)
			}
		}
	}
	duplicates, losses := w.checkChat(t, discordTurns, nil)
	mxDups, mxLosses := w.mxCheckChat(t, matrixTurns, nil)
	storedDups, storedLosses := w.checkHistory(t, ctx, all, nil)
	subs := w.submits()
	for _, tu := range all {
		if subs[tu.tag] != 1 {
			t.Errorf("%s was submitted %d times, want once", tu.tag, subs[tu.tag])
		}
	}
	for r := 1; r < rounds; r++ {
		for i, tu := range turns[r] {
			before := turns[r-1][i].tag
			for _, id := range w.idsOf(tu.tag) {
				if info, ok := w.horde.Request(id); !ok || !strings.Contains(info.Prompt, k9Answer(before)) {
					t.Errorf("%s was asked without the answer to %s before it", tu.tag, before)
				}
			}
		}
	}
	if n := inbox.count(t); n != 0 {
		t.Errorf("%d messages left in the inbox after every answer", n)
	}
	if errs := k9LogErrors(second.stderr.String()); len(errs) > 0 {
		t.Errorf("the restarted process logged errors:\n%s", strings.Join(errs, "\n"))
	}
	t.Logf("at the kill: %d conversations, %d jobs in flight, %d messages waiting in queues; after the restart: duplicates %d in chat, %d in the history; losses %d in chat, %d in the history",
		len(convs), len(turns[0]), len(waiting), duplicates+mxDups, storedDups, losses+mxLosses, storedLosses)
}

// k9Inbox reads the inbox table of the world's database while a process
// has it open, as a second reader.
type k9Inbox struct{ db *sql.DB }

func (w *k9World) openInbox(t *testing.T) *k9Inbox {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+w.dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &k9Inbox{db: db}
}

func (in *k9Inbox) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := in.db.QueryRow("SELECT count(*) FROM inbox").Scan(&n); err != nil {
		t.Fatalf("read the inbox: %v", err)
	}
	return n
}
