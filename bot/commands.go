package bot

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// OptionType is the type of a command option.
type OptionType int

// The option types every platform can render.
const (
	String OptionType = iota
	Integer
	Number
	Bool
)

func (t OptionType) String() string {
	switch t {
	case Integer:
		return "a whole number"
	case Number:
		return "a number"
	case Bool:
		return "true or false"
	default:
		return "text"
	}
}

// Choice is a fixed or suggested option value.
type Choice struct {
	Name  string // shown to the person
	Value string
}

// Option is one argument of a command.
type Option struct {
	Name        string
	Description string
	Type        OptionType
	Required    bool
	Choices     []Choice
	// Autocomplete asks the command's Complete for live suggestions.
	Autocomplete bool
	Min, Max     *float64 // for Integer and Number
	MaxLength    int      // for String; 0 means the platform's limit
	// Rest takes the rest of the line in text form (the last option only).
	Rest bool
}

// Access says who may run a command.
type Access int

// The access levels.
const (
	Everyone Access = iota
	Admins
)

// Command is declared once and rendered by every adapter: a slash command
// on Discord, a !command on Matrix.
type Command struct {
	Name        string
	Description string
	Options     []Option
	Access      Access
	// Ephemeral answers only the caller, where the platform can.
	Ephemeral bool
	// Secret means an option holds a secret (a Horde key): Discord asks for
	// it in a modal, text platforms accept it only in a DM and redact the
	// message.
	Secret bool
	// Handler runs the command.
	Handler func(ctx context.Context, c *Call) error
	// Complete suggests values for an Autocomplete option.
	Complete func(ctx context.Context, c *Call, option, partial string) []Choice
}

// Call is one invocation of a command.
type Call struct {
	Command *Command
	In      Incoming
	Args    map[string]any
	// Prefix is how the platform writes commands ("/" or "!").
	Prefix string
	// Respond answers the caller; the adapter decides how (interaction
	// reply, message, ephemeral).
	Respond func(ctx context.Context, out Outgoing) error
}

// Reply answers with text, ephemeral when the command is.
func (c *Call) Reply(ctx context.Context, format string, args ...any) error {
	text := format
	if len(args) > 0 {
		text = fmt.Sprintf(format, args...)
	}
	return c.Respond(ctx, Outgoing{Text: text, Ephemeral: c.Command.Ephemeral, Notice: true})
}

// String returns a string argument ("" when absent).
func (c *Call) String(name string) string {
	s, _ := c.Args[name].(string)
	return s
}

// Int returns an integer argument.
func (c *Call) Int(name string) (int, bool) {
	v, ok := c.Args[name].(int)
	return v, ok
}

// Float returns a number argument.
func (c *Call) Float(name string) (float64, bool) {
	switch v := c.Args[name].(type) {
	case float64:
		return v, true
	case int:
		return float64(v), true
	}
	return 0, false
}

// Has reports whether an argument was given.
func (c *Call) Has(name string) bool {
	_, ok := c.Args[name]
	return ok
}

// Registry holds the declared commands.
type Registry struct {
	cmds  map[string]*Command
	order []string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{cmds: map[string]*Command{}} }

// Add declares a command. Names are lower-case letters, digits, - and _.
func (r *Registry) Add(c *Command) error {
	if c.Name == "" || strings.ToLower(c.Name) != c.Name || strings.IndexFunc(c.Name, func(r rune) bool {
		return !unicode.IsLower(r) && !unicode.IsDigit(r) && r != '-' && r != '_'
	}) >= 0 {
		return fmt.Errorf("command name %q: use lower-case letters, digits, - and _", c.Name)
	}
	if _, dup := r.cmds[c.Name]; dup {
		return fmt.Errorf("command %q declared twice", c.Name)
	}
	for i, o := range c.Options {
		if o.Rest && i != len(c.Options)-1 {
			return fmt.Errorf("command %q: option %q takes the rest of the line but is not last", c.Name, o.Name)
		}
	}
	r.cmds[c.Name] = c
	r.order = append(r.order, c.Name)
	return nil
}

// Get returns a command by name.
func (r *Registry) Get(name string) (*Command, bool) {
	c, ok := r.cmds[strings.ToLower(name)]
	return c, ok
}

// All returns the commands in declaration order.
func (r *Registry) All() []*Command {
	out := make([]*Command, len(r.order))
	for i, n := range r.order {
		out[i] = r.cmds[n]
	}
	return out
}

// Usage renders a command's syntax: "!model [name]".
func Usage(prefix string, c *Command) string {
	var b strings.Builder
	b.WriteString(prefix + c.Name)
	for _, o := range c.Options {
		if o.Required {
			b.WriteString(" <" + o.Name + ">")
		} else {
			b.WriteString(" [" + o.Name + "]")
		}
	}
	return b.String()
}

// ParseError is a malformed text command; its message says how to fix it.
type ParseError struct{ Msg string }

func (e *ParseError) Error() string { return e.Msg }

// ParseText parses a text command line such as `!settings temperature=0.7`
// or `!model Fimbulvetr-11B-v2` for platforms without native commands.
// It returns (nil, nil, nil) when the line is not a command at all.
func (r *Registry) ParseText(prefix, line string) (*Command, map[string]any, error) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, prefix) || len(line) == len(prefix) {
		return nil, nil, nil
	}
	body := line[len(prefix):]
	name, rest, _ := strings.Cut(body, " ")
	name = strings.TrimSpace(name)
	c, ok := r.Get(name)
	if !ok {
		return nil, nil, &ParseError{Msg: fmt.Sprintf("Unknown command %s%s. Try %shelp for the list.", prefix, name, prefix)}
	}
	args := map[string]any{}
	rest = strings.TrimSpace(rest)
	positional := 0
	for rest != "" {
		// The last option may swallow the rest of the line.
		if positional < len(c.Options) && c.Options[positional].Rest && !looksNamed(rest, c.Options) {
			if err := setArg(args, c.Options[positional], rest, prefix, c); err != nil {
				return nil, nil, err
			}
			break
		}
		tok, tail := nextToken(rest)
		rest = tail
		if k, v, named := strings.Cut(tok, "="); named && optionIndex(c.Options, k) >= 0 {
			if err := setArg(args, c.Options[optionIndex(c.Options, k)], v, prefix, c); err != nil {
				return nil, nil, err
			}
			continue
		}
		for positional < len(c.Options) && args[c.Options[positional].Name] != nil {
			positional++
		}
		if positional >= len(c.Options) {
			return nil, nil, &ParseError{Msg: fmt.Sprintf("Too many arguments. Usage: %s", Usage(prefix, c))}
		}
		if err := setArg(args, c.Options[positional], tok, prefix, c); err != nil {
			return nil, nil, err
		}
		positional++
	}
	for _, o := range c.Options {
		if o.Required && args[o.Name] == nil {
			return nil, nil, &ParseError{Msg: fmt.Sprintf("Missing <%s>. Usage: %s", o.Name, Usage(prefix, c))}
		}
	}
	return c, args, nil
}

func looksNamed(s string, opts []Option) bool {
	tok, _ := nextToken(s)
	k, _, named := strings.Cut(tok, "=")
	return named && optionIndex(opts, k) >= 0
}

func optionIndex(opts []Option, name string) int {
	for i, o := range opts {
		if strings.EqualFold(o.Name, name) {
			return i
		}
	}
	return -1
}

// nextToken splits off one word, or a "quoted phrase".
func nextToken(s string) (string, string) {
	s = strings.TrimLeft(s, " \t")
	if strings.HasPrefix(s, `"`) {
		if end := strings.Index(s[1:], `"`); end >= 0 {
			return s[1 : end+1], strings.TrimLeft(s[end+2:], " \t")
		}
	}
	tok, rest, _ := strings.Cut(s, " ")
	return tok, strings.TrimLeft(rest, " \t")
}

// setArg converts and checks one value.
func setArg(args map[string]any, o Option, raw, prefix string, c *Command) error {
	bad := func(why string) error {
		return &ParseError{Msg: fmt.Sprintf("%s %s. Usage: %s", o.Name, why, Usage(prefix, c))}
	}
	v, err := ConvertOption(o, raw)
	if err != nil {
		return bad(err.Error())
	}
	args[o.Name] = v
	return nil
}

// ConvertOption turns raw text into the option's type and checks its
// range and choices; errors read "must be ...".
func ConvertOption(o Option, raw string) (any, error) {
	raw = strings.TrimSpace(raw)
	var v any
	switch o.Type {
	case Integer:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return nil, fmt.Errorf("must be a whole number (got %q)", raw)
		}
		if err := inRange(o, float64(n)); err != nil {
			return nil, err
		}
		v = n
	case Number:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("must be a number (got %q)", raw)
		}
		if err := inRange(o, f); err != nil {
			return nil, err
		}
		v = f
	case Bool:
		b, err := strconv.ParseBool(strings.ToLower(raw))
		if err != nil {
			switch strings.ToLower(raw) {
			case "yes", "on":
				b, err = true, nil
			case "no", "off":
				b, err = false, nil
			default:
				return nil, fmt.Errorf("must be true or false (got %q)", raw)
			}
		}
		v = b
	default:
		if raw == "" {
			return nil, fmt.Errorf("must not be empty")
		}
		if o.MaxLength > 0 && len([]rune(raw)) > o.MaxLength {
			return nil, fmt.Errorf("must be at most %d characters", o.MaxLength)
		}
		v = raw
	}
	if len(o.Choices) > 0 {
		s := fmt.Sprint(v)
		names := make([]string, len(o.Choices))
		for i, ch := range o.Choices {
			if strings.EqualFold(ch.Value, s) {
				return v, nil
			}
			names[i] = ch.Value
		}
		sort.Strings(names)
		return nil, fmt.Errorf("must be one of %s", strings.Join(names, ", "))
	}
	return v, nil
}

func inRange(o Option, f float64) error {
	if o.Min != nil && f < *o.Min || o.Max != nil && f > *o.Max {
		lo, hi := "-∞", "∞"
		if o.Min != nil {
			lo = strconv.FormatFloat(*o.Min, 'g', -1, 64)
		}
		if o.Max != nil {
			hi = strconv.FormatFloat(*o.Max, 'g', -1, 64)
		}
		return fmt.Errorf("must be between %s and %s", lo, hi)
	}
	return nil
}
