package discord

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Targets are journaled with every job (bot.Incoming.Target inside the
// bridge's delivery target), so their text form is stable across
// restarts. Forms, with ':' between fields:
//
//	<channel>                            a channel, thread or DM
//	<channel>:r:<message>                a channel, replying to a message
//	<channel>:t:<message>                a thread to open from a message on
//	                                     first use (its id is the message id)
//	<channel>:i:<unix>:<app>:<token>     a slash command or modal submit: the
//	                                     placeholder becomes the original response
//	<channel>:u:<unix>:<app>:<token>     a button click: only ephemeral
//	                                     answers use the interaction
//
// The token is last because nothing guarantees it has no ':'.
type target struct {
	channel string
	kind    byte
	message string // kindReply: message to reply to; kindThread: the starter message
	issued  time.Time
	app     string
	token   string
}

const (
	kindChannel   byte = 'c'
	kindReply     byte = 'r'
	kindThread    byte = 't'
	kindCommand   byte = 'i'
	kindComponent byte = 'u'
)

// tokenLifetime is how long Discord accepts an interaction token; the
// margin keeps a request that starts just before the end from failing.
const (
	tokenLifetime = 15 * time.Minute
	tokenMargin   = 30 * time.Second
)

func (t target) String() string {
	switch t.kind {
	case kindReply, kindThread:
		return t.channel + ":" + string(t.kind) + ":" + t.message
	case kindCommand, kindComponent:
		return t.channel + ":" + string(t.kind) + ":" + strconv.FormatInt(t.issued.Unix(), 10) + ":" + t.app + ":" + t.token
	}
	return t.channel
}

var errBadTarget = errors.New("discord: malformed target")

func parseTarget(s string) (target, error) {
	parts := strings.SplitN(s, ":", 5)
	if !snowflake(parts[0]) {
		return target{}, errBadTarget
	}
	t := target{channel: parts[0], kind: kindChannel}
	if len(parts) == 1 {
		return t, nil
	}
	if len(parts[1]) != 1 {
		return target{}, errBadTarget
	}
	t.kind = parts[1][0]
	switch t.kind {
	case kindReply, kindThread:
		if len(parts) != 3 || !snowflake(parts[2]) {
			return target{}, errBadTarget
		}
		t.message = parts[2]
	case kindCommand, kindComponent:
		if len(parts) != 5 || !snowflake(parts[3]) || parts[4] == "" {
			return target{}, errBadTarget
		}
		sec, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil {
			return target{}, errBadTarget
		}
		t.issued, t.app, t.token = time.Unix(sec, 0), parts[3], parts[4]
	default:
		return target{}, errBadTarget
	}
	return t, nil
}

// interaction reports whether answers may use the interaction token.
func (t target) interaction() bool { return t.kind == kindCommand || t.kind == kindComponent }

// alive reports whether the interaction token still works at now.
func (t target) alive(now time.Time) bool {
	return t.interaction() && now.Before(t.issued.Add(tokenLifetime-tokenMargin))
}

func snowflake(s string) bool {
	return s != "" && len(s) <= 20 && strings.Trim(s, "0123456789") == ""
}

// Message ids handed to the engine: channel messages are bare snowflakes;
// interaction messages carry a prefix so that an edit knows which endpoint
// to use, even after a restart.
const (
	prefixOriginal = 'o' // the interaction's original response (@original)
	prefixFollowup = 'f' // an interaction follow-up
)
