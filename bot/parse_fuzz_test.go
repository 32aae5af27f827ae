package bot_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hordechat/hordechat/bot"
)

// FuzzParseText feeds arbitrary command lines to the text parser over the
// built-in commands: it must never panic, and every argument of a parsed
// command must have its option's declared type and satisfy its range,
// length and choices.
func FuzzParseText(f *testing.F) {
	r := bot.NewRegistry()
	for _, c := range bot.Builtins() {
		if err := r.Add(c); err != nil {
			f.Fatal(err)
		}
	}
	seeds := []struct{ prefix, line string }{
		{"!", "hello"},
		{"!", "!chat tell me a story about dragons"},
		{"!", "!model Fimbulvetr-11B-v2"},
		{"!", "!model"},
		{"!", "!settings temperature=0.7 max_tokens=200"},
		{"!", "!settings 0.5"},
		{"!", "!settings temperature=hot"},
		{"!", "!settings max_tokens=5000"},
		{"!", "!settings temperature=NaN max_tokens=-0"},
		{"!", "!settings temperature=+Inf"},
		{"!", "!settings temperature=1e309 max_tokens=99999999999999999999"},
		{"!", "!settings TEMPERATURE=0x1p-2 Max_Tokens=0x10"},
		{"!", "!token destroy"},
		{"!", "!token CREATE"},
		{"!", "!link"},
		{"!", "!link sk-secret-key-0123456789 extra"},
		{"!", "!frobnicate"},
		{"!", "!new extra"},
		{"!", `!system "be a pirate" `},
		{"!", `!system "unterminated`},
		{"!", `!settings "temperature=0.7" "max_tokens=200"`},
		{"!", "!help settings"},
		{"!", "!!"},
		{"!", "! "},
		{"!", "!\t\tchat\t"},
		{"!", "!chat =="},
		{"!", "!chat message="},
		{"!", "!chat message=hi there message=again"},
		{"!", "!settings =0.7"},
		{"!", "!settings temperature=0.7 temperature=0.8 0.9"},
		{"!", "!model \xff\xfe"},
		{"!", "!chat " + strings.Repeat("é", 50)},
		{"/", "/chat hi"},
		{"", "chat hi"},
		{"hc ", "hc settings max_tokens=16"},
		{"!", "!settings\u00a0temperature=0.1"},
	}
	for _, s := range seeds {
		f.Add(s.prefix, s.line)
	}
	f.Fuzz(func(t *testing.T, prefix, line string) {
		c, args, err := r.ParseText(prefix, line)
		if err != nil {
			if c != nil || args != nil {
				t.Fatalf("ParseText(%q, %q) returned a command with error %v", prefix, line, err)
			}
			if _, ok := err.(*bot.ParseError); !ok {
				t.Fatalf("ParseText(%q, %q): error %T is not a *bot.ParseError", prefix, line, err)
			}
			if err.Error() == "" {
				t.Fatalf("ParseText(%q, %q): empty error", prefix, line)
			}
			return
		}
		if c == nil {
			if args != nil {
				t.Fatalf("ParseText(%q, %q): args %v without a command", prefix, line, args)
			}
			return
		}
		if args == nil {
			t.Fatalf("ParseText(%q, %q): command %s with nil args", prefix, line, c.Name)
		}
		for name, v := range args {
			o, ok := findOption(c.Options, name)
			if !ok {
				t.Fatalf("ParseText(%q, %q): !%s has no option %q", prefix, line, c.Name, name)
			}
			if err := checkArg(o, v); err != nil {
				t.Fatalf("ParseText(%q, %q): !%s %s=%#v: %v", prefix, line, c.Name, name, v, err)
			}
		}
		for _, o := range c.Options {
			if o.Required && args[o.Name] == nil {
				t.Fatalf("ParseText(%q, %q): !%s missing required %s", prefix, line, c.Name, o.Name)
			}
		}
	})
}

func findOption(opts []bot.Option, name string) (bot.Option, bool) {
	for _, o := range opts {
		if o.Name == name {
			return o, true
		}
	}
	return bot.Option{}, false
}

// checkArg verifies a converted value against its declaration.
func checkArg(o bot.Option, v any) error {
	var num float64
	switch o.Type {
	case bot.Integer:
		n, ok := v.(int)
		if !ok {
			return fmt.Errorf("want int, got %T", v)
		}
		num = float64(n)
	case bot.Number:
		f, ok := v.(float64)
		if !ok {
			return fmt.Errorf("want float64, got %T", v)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("not a finite number")
		}
		num = f
	case bot.Bool:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("want bool, got %T", v)
		}
	default:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want string, got %T", v)
		}
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("empty string")
		}
		if o.MaxLength > 0 && utf8.RuneCountInString(s) > o.MaxLength {
			return fmt.Errorf("longer than %d characters", o.MaxLength)
		}
	}
	if o.Type == bot.Integer || o.Type == bot.Number {
		if o.Min != nil && num < *o.Min || o.Max != nil && num > *o.Max {
			return fmt.Errorf("out of range")
		}
	}
	if len(o.Choices) > 0 {
		s := fmt.Sprint(v)
		for _, ch := range o.Choices {
			if strings.EqualFold(ch.Value, s) {
				return nil
			}
		}
		return fmt.Errorf("not one of the choices")
	}
	return nil
}
