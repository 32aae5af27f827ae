package bot

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// TestSplit pins down where Split cuts, case by case, and checks every
// result against checkSplit too.
func TestSplit(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		limit int
		want  []string
	}{
		{name: "empty", text: "", limit: 10, want: nil},
		{name: "white space only", text: " \n\t\r\n \u00a0\n", limit: 2, want: nil},
		{name: "fits unchanged", text: "\n  hello  \n\n", limit: 12, want: []string{"\n  hello  \n\n"}},
		{name: "exactly the limit", text: "abcde", limit: 5, want: []string{"abcde"}},
		{name: "one over the limit", text: "abcdef", limit: 5, want: []string{"abcde", "f"}},
		{
			name:  "paragraph break preferred to a later line break",
			text:  "aaaa aaaa aaaa\n\nbb\ncc dd ee ff",
			limit: 20,
			want:  []string{"aaaa aaaa aaaa", "bb\ncc dd ee ff"},
		},
		{
			name:  "too short a paragraph is not sent alone",
			text:  "Hi.\n\nline one is here\nline two",
			limit: 24,
			want:  []string{"Hi.\n\nline one is here", "line two"},
		},
		{
			name:  "line breaks",
			text:  "line one here\nline two here\nline three",
			limit: 30,
			want:  []string{"line one here\nline two here", "line three"},
		},
		{
			name:  "sentence end preferred to a later space",
			text:  "First sentence here. Second one follows, and more words",
			limit: 40,
			want:  []string{"First sentence here.", "Second one follows, and more words"},
		},
		{
			name:  "sentence end after a closing quote",
			text:  `He said "stop." Then he left the room quietly`,
			limit: 30,
			want:  []string{`He said "stop."`, "Then he left the room quietly"},
		},
		{
			name:  "spaces",
			text:  "alpha beta gamma delta",
			limit: 12,
			want:  []string{"alpha beta", "gamma delta"},
		},
		{
			name:  "one giant word",
			text:  strings.Repeat("x", 25),
			limit: 10,
			want:  []string{strings.Repeat("x", 10), strings.Repeat("x", 10), "xxxxx"},
		},
		{
			name:  "a word is cut only when nothing else fits",
			text:  "a " + strings.Repeat("y", 12),
			limit: 10,
			want:  []string{"a", strings.Repeat("y", 10), "yy"},
		},
		{
			name:  "leading blank lines and cut white space dropped, indentation kept",
			text:  "\n\n  first line\n\n\n    indented second\n",
			limit: 20,
			want:  []string{"  first line", "    indented second"},
		},
		{
			name:  "fence spanning parts keeps its info string",
			text:  "Intro.\n\n```go\nfunc a() {}\nfunc b() {}\nfunc c() {}\n```\n\nOutro.",
			limit: 40,
			want: []string{
				"Intro.\n\n```go\nfunc a() {}\n```",
				"```go\nfunc b() {}\nfunc c() {}\n```",
				"Outro.",
			},
		},
		{
			name:  "fence over three parts",
			text:  "```py title=\"a.py\"\nx = 1\ny = 2\nz = 3\nw = 4\n```",
			limit: 34,
			want: []string{
				"```py title=\"a.py\"\nx = 1\ny = 2\n```",
				"```py title=\"a.py\"\nz = 3\nw = 4\n```",
			},
		},
		{
			name:  "cut before a fenced block rather than inside it",
			text:  "Some prose that leads in.\n\n```\ncode line 1\ncode line 2\n```",
			limit: 45,
			want:  []string{"Some prose that leads in.", "```\ncode line 1\ncode line 2\n```"},
		},
		{
			name:  "a block that fits the next part is kept whole",
			text:  "Some intro text here, twenty.\n\n```\nline one\n\nline two\n```",
			limit: 50,
			want:  []string{"Some intro text here, twenty.", "```\nline one\n\nline two\n```"},
		},
		{
			name:  "tilde fence",
			text:  "~~~~ sh\nls -la\ncd /tmp\n~~~\npwd\n~~~~\nafter",
			limit: 26,
			want: []string{
				"~~~~ sh\nls -la\n~~~~",
				"~~~~ sh\ncd /tmp\n~~~\n~~~~",
				"~~~~ sh\npwd\n~~~~\nafter",
			},
		},
		{
			name:  "nested-looking fence",
			text:  "````md\n```go\nx := 1\n```\ntext\n````",
			limit: 26,
			want: []string{
				"````md\n```go\nx := 1\n````",
				"````md\n```\ntext\n````",
			},
		},
		{
			name:  "unclosed fence at the end stays open",
			text:  "Text here.\n\n```sh\necho one\necho two\necho three",
			limit: 24,
			want: []string{
				"Text here.",
				"```sh\necho one\n```",
				"```sh\necho two\n```",
				"```sh\necho three",
			},
		},
		{
			name:  "CRLF line endings",
			text:  "Intro\r\n\r\n```go\r\nline one\r\nline two\r\n```\r\nEnd\r\n",
			limit: 24,
			want: []string{
				"Intro",
				"```go\r\nline one\r\n```",
				"```go\r\nline two\r\n```",
				"End",
			},
		},
		{
			name:  "long code line cut inside the block",
			text:  "```\n" + strings.Repeat("a", 20) + "\n```",
			limit: 16,
			want: []string{
				"```\n" + strings.Repeat("a", 8) + "\n```",
				"```\n" + strings.Repeat("a", 8) + "\n```",
				"```\n" + strings.Repeat("a", 4) + "\n```",
			},
		},
		{
			name:  "blank start of a block needs an empty block",
			text:  "```\n" + strings.Repeat("\n", 12) + "x\n```",
			limit: 12,
			want:  []string{"```\n```", "```\nx\n```"},
		},
		{
			name:  "limit too small for fence repair splits plainly",
			text:  "```python\nprint(1)\n```",
			limit: 12,
			want:  []string{"```python", "print(1)\n```"},
		},
		{
			name:  "inline code span kept whole",
			text:  "run the command `go test -race ./...` now",
			limit: 36,
			want:  []string{"run the command", "`go test -race ./...` now"},
		},
		{
			name:  "no part starts with a fence-like run",
			text:  "aaaa bbbb ~~~strike cccc",
			limit: 14,
			want:  []string{"aaaa", "bbbb ~~~strike", "cccc"},
		},
		{
			name:  "emoji modifier kept with its emoji",
			text:  "aaaa👍🏽bbbb",
			limit: 6,
			want:  []string{"aaaa", "👍🏽bb", "bb"},
		},
		{
			name:  "emoji ZWJ sequence kept whole",
			text:  "ab👨‍👩‍👧cd",
			limit: 9,
			want:  []string{"ab", "👨‍👩‍👧c", "d"},
		},
		{
			name:  "flags cut between, not inside",
			text:  "🇫🇷🇩🇪🇯🇵",
			limit: 6,
			want:  []string{"🇫🇷", "🇩🇪", "🇯🇵"},
		},
		{
			name:  "combining marks kept with their base",
			text:  "cafe\u0301 cafe\u0301s",
			limit: 4,
			want:  []string{"caf", "e\u0301", "caf", "e\u0301s"},
		},
		{
			name:  "one character too long for the limit is cut between code points",
			text:  "e" + strings.Repeat("\u0301", 9),
			limit: 4,
			want:  []string{"e\u0301\u0301\u0301", "\u0301\u0301\u0301\u0301", "\u0301\u0301"},
		},
		{
			name:  "CJK cut after a full stop",
			text:  "日本語の文章です。次の文です。",
			limit: 10,
			want:  []string{"日本語の文章です。", "次の文です。"},
		},
		{
			name:  "emoji count two units",
			text:  "😀😀😀😀😀",
			limit: 4,
			want:  []string{"😀😀", "😀😀", "😀"},
		},
		{
			name:  "parts with fence lines exactly at the limit",
			text:  "```\nabcde\nfghij\n```",
			limit: 13,
			want:  []string{"```\nabcde\n```", "```\nfghij\n```"},
		},
		{
			name:  "one unit less cuts the line",
			text:  "```\nabcde\nfghij\n```",
			limit: 12,
			want:  []string{"```\nabcd\n```", "```\ne\n```", "```\nfghi\n```", "```\nj\n```"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Split(tt.text, tt.limit)
			if !equalSplit(got, tt.want) {
				t.Errorf("Split(%q, %d)\n got %s\nwant %s", tt.text, tt.limit, showSplit(got), showSplit(tt.want))
			}
			checkSplit(t, tt.text, tt.limit, got, refUTF16Len)
		})
	}
}

// TestSplitRuneMeasure checks the splitter under the other plausible
// measure, code points.
func TestSplitRuneMeasure(t *testing.T) {
	text := "😀😀😀😀😀 ```go\nfmt.Println(\"😀😀\")\n```"
	for limit := minSplitLimit; limit < 40; limit++ {
		got := splitMeasured(text, limit, utf8.RuneCountInString)
		checkSplit(t, text, limit, got, utf8.RuneCountInString)
	}
	if got, want := splitMeasured("😀😀😀😀", 2, utf8.RuneCountInString), []string{"😀😀", "😀😀"}; !equalSplit(got, want) {
		t.Errorf("rune measure: got %s, want %s", showSplit(got), showSplit(want))
	}
}

// TestSplitPanicsOnTinyLimit: a limit below one character cannot be met.
func TestSplitPanicsOnTinyLimit(t *testing.T) {
	for _, limit := range []int{-1, 0, 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Split(_, %d) did not panic", limit)
				}
			}()
			Split("text", limit)
		}()
	}
}

// TestUTF16Len compares utf16Len with the standard library's encoder.
func TestUTF16Len(t *testing.T) {
	for _, s := range []string{"", "abc", "é", "日本", "😀", "👨‍👩‍👧", "\xff\xfe", "\xed\xa0\x80", "a\U0010FFFFb"} {
		if got, want := utf16Len(s), refUTF16Len(s); got != want {
			t.Errorf("utf16Len(%q) = %d, want %d", s, got, want)
		}
	}
}

// TestSplitProperties splits random markdown at random limits and checks
// the invariants checkSplit documents.
func TestSplitProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 1))
	n := 4000
	if testing.Short() {
		n = 500
	}
	for i := range n {
		text := genMarkdown(rng)
		var limit int
		switch rng.IntN(3) {
		case 0:
			limit = minSplitLimit + rng.IntN(20)
		case 1:
			limit = 20 + rng.IntN(200)
		default:
			limit = 200 + rng.IntN(2000)
		}
		parts := Split(text, limit)
		checkSplit(t, text, limit, parts, refUTF16Len)
		if t.Failed() {
			t.Fatalf("case %d: Split(%q, %d) = %s", i, text, limit, showSplit(parts))
		}
		if i%4 == 0 { // the other measure Split could use
			parts := splitMeasured(text, limit, utf8.RuneCountInString)
			checkSplit(t, text, limit, parts, utf8.RuneCountInString)
			if t.Failed() {
				t.Fatalf("case %d: splitMeasured(%q, %d, runes) = %s", i, text, limit, showSplit(parts))
			}
		}
	}
}

// FuzzSplit checks checkSplit's invariants on arbitrary text and limits.
func FuzzSplit(f *testing.F) {
	seeds := []string{
		"",
		"hello world",
		"para one.\n\npara two\nline",
		"```go\nfunc main() {}\n```\ntext after",
		"````\n```\ninner\n```\n````",
		"~~~ info ``with`` ticks\nbody\n~~~",
		"```\nunclosed body line\nmore",
		"a\r\n```c\r\nint x;\r\n```\r\n",
		"x```y ~~~z `code span` and ``more code``",
		"👨‍👩‍👧‍👦🇫🇷e\u0301日本語。テスト！",
		"   indented\n\n\n\t\ttabs\u00a0nbsp\u2028sep",
		"\xff\xfe invalid \xed\xa0\x80 utf8",
		strings.Repeat("`", 40) + "\n" + strings.Repeat("~", 7),
		"\x00\x000", // NUL is a character, not "no character"
	}
	for i, s := range seeds {
		f.Add(s, uint16(i*7))
	}
	f.Add("00\n```00\n0000000\n```\r  ", uint16(20)) // trailing CR: not a closer until trimmed
	f.Fuzz(func(t *testing.T, text string, limit uint16) {
		l := minSplitLimit + int(limit%300)
		parts := Split(text, l)
		checkSplit(t, text, l, parts, refUTF16Len)
	})
}

// BenchmarkSplit splits a 100 KB answer with code blocks for Discord.
func BenchmarkSplit(b *testing.B) {
	text := benchAnswer(100 << 10)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	var parts []string
	for b.Loop() {
		parts = Split(text, 2000)
	}
	b.ReportMetric(float64(len(parts)), "parts")
}

// benchAnswer builds a chat answer of about size bytes: prose, lists and
// code blocks, as a model writes them.
func benchAnswer(size int) string {
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "## Step %d\n\nHere is how the `handler` works. It reads the request, checks "+
			"the token and calls the service; errors are wrapped with context. "+
			"The retry loop backs off exponentially, up to five attempts.\n\n", i)
		b.WriteString("- first, validate the input\n- then, call `Do(ctx)`\n- finally, log the result 🎉\n\n")
		b.WriteString("```go\n")
		for j := range 30 {
			fmt.Fprintf(&b, "func step%d_%d(ctx context.Context, req *Request) (*Response, error) { return nil, nil }\n", i, j)
		}
		b.WriteString("```\n\n")
	}
	return b.String()
}

// refUTF16Len counts UTF-16 code units independently of utf16Len.
func refUTF16Len(s string) int { return len(utf16.Encode([]rune(s))) }

// refFence is a fenced block as the test's own, regexp-based parser sees it.
type refFence struct {
	a, openEnd int    // opener line start and end (trailing space trimmed)
	runEnd     int    // end of the closing fence characters; len(text) if unclosed
	open       string // opener line, trailing space trimmed
	eol        string // the opener line's line ending
	close      string // the closing line Split adds: indentation and fence
	closing    string // the text's own closing line up to runEnd
	closed     bool
}

var refOpenerRE = regexp.MustCompile("^( {0,3})(`{3,}|~{3,})(.*)$")

// refParse finds the fenced code blocks of text (CommonMark, top level).
func refParse(text string) []refFence {
	var fs []refFence
	closer := "" // the open block's fence, when one is open
	pos := 0
	for _, raw := range strings.SplitAfter(text, "\n") {
		line := strings.TrimSuffix(raw, "\n")
		eol := "\n"
		if strings.HasSuffix(line, "\r") {
			line, eol = line[:len(line)-1], "\r\n"
		}
		if closer != "" {
			if closing, ok := refCloses(line, closer); ok {
				f := &fs[len(fs)-1]
				f.closed, f.closing, f.runEnd = true, closing, pos+len(closing)
				closer = ""
			}
		} else if m := refOpenerRE.FindStringSubmatch(line); m != nil && !(m[2][0] == '`' && strings.Contains(m[3], "`")) {
			open := strings.TrimRightFunc(line, unicode.IsSpace)
			fs = append(fs, refFence{a: pos, openEnd: pos + len(open), runEnd: len(text), open: open, eol: eol, close: m[1] + m[2]})
			closer = m[2]
		}
		pos += len(raw)
	}
	return fs
}

// refCloses reports whether line closes a block opened with fence, and
// returns the line up to the end of its fence characters.
func refCloses(line, fence string) (string, bool) {
	t := strings.TrimLeft(line, " ")
	indent := len(line) - len(t)
	run := len(t) - len(strings.TrimLeft(t, fence[:1]))
	if indent > 3 || run < len(fence) || strings.Trim(t[run:], " \t") != "" {
		return "", false
	}
	return line[:indent+run], true
}

// checkSplit checks what Split promises about parts = Split(text, limit)
// with measure m:
//   - nil for white space only text, the text itself when it fits;
//   - every part within the limit, not blank, starting on a non-blank
//     line and ending in a non-space character;
//   - with the added fence lines removed, the parts are substrings of text
//     in order with only white space around them, and where dropped white
//     space held a line break the next part starts at a line start or
//     with a non-space character;
//   - when every block of text can be repaired at this limit, each part
//     parses with its fences balanced, except that the last one is open
//     when text ends open, and except a part that begins or ends with a
//     partial line looking like a fence (unavoidable at some limits).
func checkSplit(t testing.TB, text string, limit int, parts []string, m func(string) int) {
	t.Helper()
	if strings.TrimSpace(text) == "" {
		if parts != nil {
			t.Errorf("white space only text: got %s, want nil", showSplit(parts))
		}
		return
	}
	if m(text) <= limit {
		if len(parts) != 1 || parts[0] != text {
			t.Errorf("text fits: got %s, want it unchanged", showSplit(parts))
		}
		return
	}
	for i, p := range parts {
		if n := m(p); n > limit {
			t.Errorf("part %d measures %d > %d: %q", i, n, limit, p)
		}
		if strings.TrimSpace(p) == "" {
			t.Errorf("part %d is blank: %q", i, p)
		}
		if strings.TrimRightFunc(p, unicode.IsSpace) != p {
			t.Errorf("part %d ends in white space: %q", i, p)
		}
		first, _, _ := strings.Cut(p, "\n")
		if strings.TrimSpace(first) == "" {
			t.Errorf("part %d starts with a blank line: %q", i, p)
		}
	}
	fs := refParse(text)
	repairAll := true
	repairable := make([]bool, len(fs))
	for i, f := range fs {
		pre, post := m(f.open+f.eol), m(f.eol+f.close)
		repairable[i] = pre+post+minFenceContent <= limit && (!f.closed || pre+m(f.closing) <= limit)
		repairAll = repairAll && repairable[i]
	}
	openAt := func(x int) *refFence {
		for i := range fs {
			if repairable[i] && fs[i].openEnd <= x && x < fs[i].runEnd {
				return &fs[i]
			}
		}
		return nil
	}
	where := make([][2]int, len(parts))
	if !placeParts(text, parts, 0, 0, openAt, where, map[[2]int]bool{}) {
		t.Errorf("parts do not round-trip to the text:\ntext  %q\nparts %s", text, showSplit(parts))
		return
	}
	if !repairAll {
		return
	}
	// The last part ends where the text's trailing white space starts.
	tf := refParse(strings.TrimRightFunc(text, unicode.IsSpace))
	endsOpen := len(tf) > 0 && !tf[len(tf)-1].closed
	for i, p := range parts {
		q, end := where[i][0], where[i][1]
		if q > 0 && text[q-1] != '\n' && looksLikeFence(text[q:]) {
			continue // begins mid-line with ``` or ~~~
		}
		rest, _, _ := strings.Cut(text[end:], "\n")
		rest = strings.TrimSuffix(rest, "\r")
		if ls := max(q, strings.LastIndexByte(text[:end], '\n')+1); i < len(parts)-1 && strings.Trim(rest, " \t") != "" && lineLooksLikeFence(text[ls:end]) {
			continue // ends mid-line, with a line starting ``` or ~~~
		}
		pf := refParse(p)
		open := len(pf) > 0 && !pf[len(pf)-1].closed
		if want := endsOpen && i == len(parts)-1; open != want {
			t.Errorf("part %d: fence left open = %v, want %v: %q", i, open, want, p)
		}
	}
}

// placeParts finds parts[k:] in text from pos on, removing the fence lines
// Split may add, and records where each part's content lies. It backtracks
// where an added closing line equals the text's own, remembering in failed
// the (part, offset) pairs that lead nowhere.
func placeParts(text string, parts []string, k, pos int, openAt func(int) *refFence, where [][2]int, failed map[[2]int]bool) bool {
	if k == len(parts) {
		return strings.TrimSpace(text[pos:]) == ""
	}
	if failed[[2]int{k, pos}] {
		return false
	}
	if placePart(text, parts, k, pos, openAt, where, failed) {
		return true
	}
	failed[[2]int{k, pos}] = true
	return false
}

// placePart tries the ways parts[k] can sit in text from pos on.
func placePart(text string, parts []string, k, pos int, openAt func(int) *refFence, where [][2]int, failed map[[2]int]bool) bool {
	e := pos
	for e < len(text) {
		r, size := utf8.DecodeRuneInString(text[e:])
		if !unicode.IsSpace(r) {
			break
		}
		e += size
	}
	content := parts[k]
	if f := openAt(e); k > 0 && f != nil {
		head := f.open + f.eol
		if !strings.HasPrefix(content, head) {
			return false
		}
		content = content[len(head):]
	}
	lead := len(content) - len(strings.TrimLeftFunc(content, unicode.IsSpace))
	q := e - lead
	if q < pos || text[q:e] != content[:lead] {
		return false
	}
	if lead > 0 && q > 0 && text[q-1] != '\n' {
		return false // indentation kept only whole, from a line start
	}
	last := k == len(parts)-1
	if strings.HasPrefix(text[q:], content) {
		end := q + len(content)
		if last || openAt(end) == nil {
			where[k] = [2]int{q, end}
			if placeParts(text, parts, k+1, end, openAt, where, failed) {
				return true
			}
		}
	}
	if last {
		return false
	}
	i := strings.LastIndexByte(content, '\n')
	if i < 0 {
		return false
	}
	closeLine := content[i+1:]
	for _, eol := range []string{"\r\n", "\n"} {
		body, ok := strings.CutSuffix(content, eol+closeLine)
		if !ok || strings.TrimRightFunc(body, unicode.IsSpace) != body {
			continue
		}
		end := q + len(body)
		f := openAt(end)
		if f == nil || f.eol != eol || f.close != closeLine || !strings.HasPrefix(text[q:], body) {
			continue
		}
		where[k] = [2]int{q, end}
		if placeParts(text, parts, k+1, end, openAt, where, failed) {
			return true
		}
	}
	return false
}

// genMarkdown makes a random chat answer: paragraphs, lists, headings,
// fenced blocks of every kind, long words and non-ASCII text.
func genMarkdown(rng *rand.Rand) string {
	words := []string{
		"the", "a", "model", "answer", "is", "here", "and", "code", "end.", "done!", "why?",
		"e.g.", "`x`", "`go test ./...`", "``a ` b``", "**bold**", "_it_", "https://example.com/a/b?c=d",
		"日本語", "中文句子。", "文章、", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷🇩🇪", "cafe\u0301", "a\u0308\u0301", "😀",
		"x```y", "~~~", "```", "``", "\u00a0", "tab\there", "word\u2028sep",
	}
	word := func() string {
		if rng.IntN(40) == 0 {
			return strings.Repeat(string(rune('a'+rng.IntN(26))), 1+rng.IntN(300))
		}
		return words[rng.IntN(len(words))]
	}
	line := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteString([]string{" ", " ", " ", "  ", ". ", "\u3000"}[rng.IntN(6)])
			}
			b.WriteString(word())
		}
		return b.String()
	}
	var b strings.Builder
	blocks := 1 + rng.IntN(10)
	for i := range blocks {
		if i > 0 {
			b.WriteString([]string{"\n\n", "\n\n", "\n", "\n\n\n", "\n \n\t\n"}[rng.IntN(5)])
		}
		switch rng.IntN(9) {
		case 0, 1, 2:
			for j := range 1 + rng.IntN(4) {
				if j > 0 {
					b.WriteString("\n")
				}
				b.WriteString(line(1 + rng.IntN(30)))
			}
		case 3:
			for j := range 1 + rng.IntN(5) {
				if j > 0 {
					b.WriteString("\n")
				}
				b.WriteString([]string{"- ", "1. ", "  - ", "> "}[rng.IntN(4)] + line(1+rng.IntN(10)))
			}
		case 4:
			b.WriteString(strings.Repeat("#", 1+rng.IntN(3)) + " " + line(1+rng.IntN(5)))
		default:
			ch := []string{"`", "~"}[rng.IntN(2)]
			n := 3 + rng.IntN(3)
			fence := strings.Repeat(ch, n)
			info := []string{"", "go", "python title=\"a.py\"", " sh ", "c++ {.numberLines}", strings.Repeat("i", rng.IntN(60))}[rng.IntN(6)]
			b.WriteString(strings.Repeat(" ", rng.IntN(4)) + fence + info + "\n")
			for range rng.IntN(15) {
				switch rng.IntN(8) {
				case 0:
					b.WriteString("\n")
				case 1:
					b.WriteString(strings.Repeat(ch, 3) + "inner\n") // not a closer
				case 2:
					b.WriteString(strings.Repeat("`", 3) + "\n") // closes only a shorter ``` fence
				default:
					b.WriteString(strings.Repeat("    ", rng.IntN(3)) + line(1+rng.IntN(12)) + "\n")
				}
			}
			if rng.IntN(8) != 0 {
				b.WriteString(strings.Repeat(" ", rng.IntN(4)) + fence + strings.Repeat(ch, rng.IntN(2)) + []string{"", " ", "\t"}[rng.IntN(3)])
			}
		}
	}
	b.WriteString([]string{"", "", "\n", "\n\n  \n"}[rng.IntN(4)])
	s := b.String()
	if rng.IntN(6) == 0 {
		s = strings.ReplaceAll(s, "\n", "\r\n")
	}
	return s
}

// equalSplit compares parts, telling nil from empty.
func equalSplit(a, b []string) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// showSplit formats parts for a failure message.
func showSplit(parts []string) string {
	if parts == nil {
		return "nil"
	}
	var b strings.Builder
	b.WriteString("[")
	for i, p := range parts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", p)
	}
	b.WriteString("]")
	return b.String()
}
