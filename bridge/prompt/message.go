package prompt

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Roles a Message may have.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one chat message, as in the OpenAI chat API.
type Message struct {
	Role    string // RoleSystem, RoleUser or RoleAssistant
	Name    string // optional speaker name, rendered for user messages only
	Content string
}

// Errors returned by Render and Fit; they are wrapped with detail, so test
// with errors.Is.
var (
	ErrNoMessages     = errors.New("prompt: no messages")
	ErrUnknownRole    = errors.New("prompt: unknown role")
	ErrBudgetTooSmall = errors.New("prompt: token budget below the template overhead")
	ErrNilTemplate    = errors.New("prompt: nil template")
)

// role is the parsed form of Message.Role; the values index Template.turns.
type role uint8

const (
	roleSystem role = iota
	roleUser
	roleAssistant
)

func parseRole(s string) (role, bool) {
	switch s {
	case RoleSystem:
		return roleSystem, true
	case RoleUser:
		return roleUser, true
	case RoleAssistant:
		return roleAssistant, true
	}
	return 0, false
}

func validate(msgs []Message) error {
	if len(msgs) == 0 {
		return ErrNoMessages
	}
	for i := range msgs {
		if _, ok := parseRole(msgs[i].Role); !ok {
			return fmt.Errorf("%w %q in message %d (want %s, %s or %s)",
				ErrUnknownRole, msgs[i].Role, i, RoleSystem, RoleUser, RoleAssistant)
		}
	}
	return nil
}

// EstimateTokens estimates the tokens of s the way the Horde does: its length
// in code points (Python's len(str), so runes here, not bytes) divided by 4,
// rounded up.
func EstimateTokens(s string) int {
	return tokensOf(utf8.RuneCountInString(s))
}

func tokensOf(runes int) int { return (runes + 3) / 4 }

// cleanName makes a speaker name safe to put on a line: surrounding space
// goes and control characters (newlines that would fake a new turn) become
// spaces. It allocates only when something must change.
func cleanName(s string) string {
	s = strings.TrimSpace(s)
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
}

// size is the length of a piece of prompt in runes (for the token estimate)
// and bytes (to size the builder once).
type size struct{ runes, bytes int }

func (a size) add(b size) size { return size{a.runes + b.runes, a.bytes + b.bytes} }

// sstr is a string measured once, so that fitting never counts a marker or
// the system prompt again per candidate.
type sstr struct {
	s string
	n size
}

func measure(s string) sstr {
	return sstr{s, size{utf8.RuneCountInString(s), len(s)}}
}
