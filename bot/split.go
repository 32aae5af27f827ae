package bot

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Split cuts text into messages of at most limit characters each, for chat
// platforms that cap message length (Discord: 2000).
//
// # Counting
//
// Characters are counted as UTF-16 code units: a code point above U+FFFF
// (most emoji) counts 2, any other code point 1, and each byte of invalid
// UTF-8 1 (JSON encoding sends it as one U+FFFD). Discord's API counts
// code points (its staff, discord-api-docs#1315), while some libraries
// (twilight) document the limit in UTF-16 units; the UTF-16 count is never
// smaller than the code point count, so a part that fits by it fits by
// either, at the cost of shorter parts in emoji-heavy text. Matrix limits
// only the whole event, to 65536 bytes: a UTF-16 unit is at most 3 bytes
// of UTF-8, so an adapter can size its limit from that (leaving room for
// JSON escaping, the envelope and any formatted_body).
//
// # Where it cuts
//
// From best to worst: at a blank line, or just before or after a fenced
// code block; at a line break; after the end of a sentence; at a space
// (or between two CJK characters, which CJK text breaks like spaces);
// between two characters of a word. A cut inside a fenced block ranks one
// step below the same cut outside, so a block that fits in the next part
// is kept whole. A better cut is taken only when the part it ends is at
// least half the limit long; otherwise the cut giving the longest part
// without breaking a word wins, and a word is cut only when no space or
// line break fits. Cuts at a space inside an inline code span (`...`)
// come after every other space. Split never cuts inside a UTF-8 sequence,
// and never between a character and its combining marks, inside an emoji
// ZWJ or modifier sequence or between the two halves of a flag, unless
// that one character alone would not fit. It avoids cuts that would make
// a part begin or end with a partial line that looks like a fence (```
// or ~~~), since that line would open or close a block.
//
// # Code fences
//
// Fenced code blocks (CommonMark: a line of at most 3 spaces, then 3 or
// more ` or ~ and an optional info string; closed by a line of at least as
// many of the same character and nothing else) are never left broken: a
// part that ends inside a block gets a closing fence line (the opener's
// indentation and fence) appended, and the next part starts with the
// opener line again, info string included; both lines count toward the
// limit and use the opener's line ending (LF or CRLF). A block is repaired
// this way only when the limit leaves room for the opener line, the
// closing line, their line breaks and 4 units of content, and for the
// opener line plus the block's own closing line; at a smaller limit that
// block is split as plain text. A fence the text leaves open at its end
// stays open in the last part. A fence inside a list item or block quote
// is recognised only when indented by at most 3 spaces; a ">" prefix is
// not understood.
//
// # What is preserved
//
// Text with nothing but white space gives nil; text that fits is returned
// unchanged as the only part. Otherwise, once the added fence lines are
// removed, each part is a substring of text, the parts appear in order, and
// only white space (unicode.IsSpace) lies between two parts, before the
// first and after the last: that is all Split drops. Every part starts on
// a non-blank line and ends in a non-space character; where the dropped
// white space held a line break the next part starts at the beginning of
// its line, so indentation survives, and where it did not (a cut at a
// space) the next part starts at the following word. (A line whose
// indentation alone does not fit loses it.) No part is empty or white
// space only.
//
// Split takes time and memory linear in len(text). It panics if
// limit < 2, since one character may need 2 units.
func Split(text string, limit int) []string {
	return splitMeasured(text, limit, utf16Len)
}

// utf16Len is Split's measure: the length of s in UTF-16 code units, an
// invalid UTF-8 byte counting as one U+FFFD.
func utf16Len(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			n++
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
		i += size
	}
	return n
}

// minSplitLimit is the smallest limit Split accepts: the most units one
// code point takes.
const minSplitLimit = 2

// minFenceContent is the room, in measured units, that repairing a fence
// must leave for the block's content in a part that reopens and closes it.
// It is at least minSplitLimit, so such a part always holds a code point.
const minFenceContent = 4

// splitMeasured is Split with the measure as a parameter. measure must be
// additive over concatenation of whole code points, count each ASCII byte
// as 1 and any one code point as at most minSplitLimit (UTF-16 units and
// code points both qualify).
func splitMeasured(text string, limit int, measure func(string) int) []string {
	if limit < minSplitLimit {
		panic("bot: Split limit must be at least 2")
	}
	if strings.TrimSpace(text) == "" {
		return nil
	}
	total := measure(text)
	if total <= limit {
		return []string{text}
	}
	sp := splitter{text: text, limit: limit, measure: measure}
	sp.parse()
	parts := make([]string, 0, total/limit+2)
	for s := firstLineStart(text); s < len(text); {
		var part string
		part, s = sp.next(s)
		parts = append(parts, part)
	}
	return parts
}

// noChar stands for no character: the start of a part, or white space.
const noChar rune = -1

// cutClass ranks cut positions, best last.
type cutClass int8

const (
	clsForce     cutClass = iota // between code points of one character
	clsFenceLike                 // leaves a partial line that looks like a fence
	clsEmpty                     // leaves an empty fenced block in a part
	clsHard                      // between two characters of a word
	clsSpan                      // at white space inside an inline code span
	clsSpace                     // at white space within a line
	clsSentence                  // at white space after a sentence end
	clsLine                      // at a line break
	clsPara                      // at a blank line, or before or after a fenced block
	numClasses
)

// splitCut is a candidate end of a part.
type splitCut struct {
	pos  int        // byte offset in text where the part's content ends
	cost int        // measure of the whole part, fence lines included
	f    *codeFence // the fence left open at pos, closed by an added line; or nil
	ok   bool
}

// codeFence is a fenced code block of the text. Offsets are bytes into text.
type codeFence struct {
	a       int // start of the opener line
	openEnd int // end of the opener line, trailing white space excluded
	b       int // start of the body: after the opener line's line break
	c       int // start of the closing line; len(text) when unclosed
	runEnd  int // end of the closing line's fence characters; c when unclosed
	d       int // end of the closing line, before its line break; c when unclosed
	last    int // end of the body's last non-space character (b if none)

	open  string // the opener line, as the reopening line
	close string // the added closing line: the opener's indentation and fence
	eol   string // "\n", or "\r\n" when the opener line ends so
	pre   int    // measure of open+eol
	post  int    // measure of eol+close

	// repair says the limit leaves room to close and reopen this block;
	// when false the block is split as plain text.
	repair bool
}

// codeSpan is an inline code span, [start, end) in text.
type codeSpan struct{ start, end int }

// splitter holds one Split call's state.
type splitter struct {
	text    string
	limit   int
	measure func(string) int
	fences  []codeFence
	spans   []codeSpan
	fi, si  int // first fence and span not wholly before the current part

	nextRun  map[int]int // pairTickRuns' scratch: run length to index
	nextSame []int       // pairTickRuns' scratch: next run of the same length
}

// splitASCIISpace marks the ASCII bytes unicode.IsSpace accepts.
var splitASCIISpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// firstLineStart is where the first part starts: the beginning of the
// first line holding more than white space.
func firstLineStart(text string) int {
	start := 0
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			if !splitASCIISpace[c] {
				return start
			}
			i++
			if c == '\n' {
				start = i
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		if !unicode.IsSpace(r) {
			return start
		}
		i += size
	}
	return len(text)
}

// parse finds the fenced code blocks and the inline code spans.
func (sp *splitter) parse() {
	text := sp.text
	n := len(text)
	cur := -1 // index of the open fence
	var runs []tickRun
	var openCh byte
	var openLen int
	for ls := 0; ls < n; {
		le := strings.IndexByte(text[ls:], '\n')
		next := n
		if le < 0 {
			le = n
		} else {
			le += ls
			next = le + 1
		}
		ce := le
		if ce > ls && text[ce-1] == '\r' {
			ce--
		}
		line := text[ls:ce]
		switch {
		case cur >= 0:
			if runEnd, ok := closerOf(line, openCh, openLen); ok {
				sp.closeFence(cur, ls, ls+runEnd, le)
				cur = -1
			}
		case isBlankMDLine(line):
			runs = sp.pairTickRuns(runs)
		default:
			indent, ch, run, ok := openerOf(line)
			if !ok {
				runs = appendTickRuns(runs, line, ls)
				break
			}
			runs = sp.pairTickRuns(runs)
			open := strings.TrimRightFunc(line, unicode.IsSpace)
			eol := "\n"
			if ce < le {
				eol = "\r\n"
			}
			sp.fences = append(sp.fences, codeFence{
				a: ls, openEnd: ls + len(open), b: next,
				open: open, close: line[:indent+run], eol: eol,
			})
			cur = len(sp.fences) - 1
			openCh, openLen = ch, run
		}
		ls = next
	}
	if cur >= 0 {
		sp.closeFence(cur, n, n, n)
	}
	sp.pairTickRuns(runs)
	for i := range sp.fences {
		f := &sp.fences[i]
		f.pre = sp.measure(f.open) + sp.measure(f.eol)
		f.post = sp.measure(f.eol) + sp.measure(f.close)
		f.repair = f.pre+f.post+minFenceContent <= sp.limit &&
			f.pre+sp.measure(text[f.c:f.runEnd]) <= sp.limit
	}
}

// closeFence records where fence i's closing line is.
func (sp *splitter) closeFence(i, c, runEnd, d int) {
	f := &sp.fences[i]
	f.c, f.runEnd, f.d = c, runEnd, d
	if f.b > c {
		f.b = c
	}
	f.last = f.b + len(strings.TrimRightFunc(sp.text[f.b:c], unicode.IsSpace))
}

// openerOf reports whether line opens a fenced code block, with its
// indentation, fence character and fence length.
func openerOf(line string) (indent int, ch byte, run int, ok bool) {
	for indent < len(line) && line[indent] == ' ' {
		indent++
	}
	if indent > 3 || indent == len(line) {
		return 0, 0, 0, false
	}
	ch = line[indent]
	if ch != '`' && ch != '~' {
		return 0, 0, 0, false
	}
	j := indent
	for j < len(line) && line[j] == ch {
		j++
	}
	if j-indent < 3 || (ch == '`' && strings.IndexByte(line[j:], '`') >= 0) {
		return 0, 0, 0, false
	}
	return indent, ch, j - indent, true
}

// closerOf reports whether line closes a block opened by at least n ch,
// and where its fence characters end.
func closerOf(line string, ch byte, n int) (runEnd int, ok bool) {
	i := 0
	for i < len(line) && line[i] == ' ' {
		i++
	}
	if i > 3 {
		return 0, false
	}
	j := i
	for j < len(line) && line[j] == ch {
		j++
	}
	if j-i < n {
		return 0, false
	}
	for k := j; k < len(line); k++ {
		if line[k] != ' ' && line[k] != '\t' {
			return 0, false
		}
	}
	return j, true
}

// isBlankMDLine reports whether a line holds only spaces and tabs.
func isBlankMDLine(line string) bool {
	for i := 0; i < len(line); i++ {
		if line[i] != ' ' && line[i] != '\t' {
			return false
		}
	}
	return true
}

// tickRun is a run of n backticks at pos.
type tickRun struct{ pos, n int }

// appendTickRuns adds the backtick runs of a paragraph line starting at
// offset base.
func appendTickRuns(runs []tickRun, line string, base int) []tickRun {
	for i := strings.IndexByte(line, '`'); i >= 0; {
		j := i
		for j < len(line) && line[j] == '`' {
			j++
		}
		runs = append(runs, tickRun{base + i, j - i})
		k := strings.IndexByte(line[j:], '`')
		if k < 0 {
			break
		}
		i = j + k
	}
	return runs
}

// pairTickRuns turns one paragraph's backtick runs into code spans, as
// CommonMark does: a run opens a span that the next run of the same length
// closes; a run with none is literal. It returns runs emptied for reuse.
func (sp *splitter) pairTickRuns(runs []tickRun) []tickRun {
	if len(runs) < 2 {
		return runs[:0]
	}
	if sp.nextRun == nil {
		sp.nextRun = make(map[int]int)
	}
	clear(sp.nextRun)
	next := sp.nextSame[:0]
	for range runs {
		next = append(next, -1)
	}
	for i := len(runs) - 1; i >= 0; i-- {
		if j, ok := sp.nextRun[runs[i].n]; ok {
			next[i] = j
		}
		sp.nextRun[runs[i].n] = i
	}
	for i := 0; i < len(runs); {
		j := next[i]
		if j < 0 {
			i++
			continue
		}
		sp.spans = append(sp.spans, codeSpan{runs[i].pos, runs[j].pos + runs[j].n})
		i = j + 1
	}
	sp.nextSame = next
	return runs[:0]
}

// next makes the part starting at s and returns it with where the next
// part starts (len(text) after the last).
func (sp *splitter) next(s int) (string, int) {
	text, n := sp.text, len(sp.text)
	for sp.fi < len(sp.fences) && sp.fences[sp.fi].d < s {
		sp.fi++
	}
	for sp.si < len(sp.spans) && sp.spans[sp.si].end <= s {
		sp.si++
	}
	for {
		var reopen *codeFence
		if sp.fi < len(sp.fences) {
			if f := &sp.fences[sp.fi]; f.repair && f.b <= s && s < f.runEnd {
				reopen = f
			}
		}
		best, end, final := sp.scan(s, reopen, false)
		if final {
			return assemblePart(reopen, text[s:end], nil), n
		}
		if !anyAbove(&best, clsSpan) {
			best, _, _ = sp.scan(s, reopen, true)
		}
		if c, ok := chooseCut(&best, sp.limit/2); ok {
			return assemblePart(reopen, text[s:c.pos], c.f), sp.skip(c.pos)
		}
		// Nothing fits: the line's indentation is too long to keep.
		// Drop it, as white space at a cut.
		j := s
		for j < n {
			r, size := utf8.DecodeRuneInString(text[j:])
			if !unicode.IsSpace(r) {
				break
			}
			j += size
		}
		if j == s || j == n {
			panic("bot: Split found no cut (bug)")
		}
		s = j
	}
}

// scan walks text from s while the part can still fit, noting the best
// cut of each class. final reports that the rest of the text fits; it then
// ends at end. Cuts between two characters (classes hard and below) are
// noted only when boundaries is set: they are the rare last resort, and
// skipping them keeps the common pass a tight loop over ASCII words.
func (sp *splitter) scan(s int, reopen *codeFence, boundaries bool) (best [numClasses]splitCut, end int, final bool) {
	text, n, limit := sp.text, len(sp.text), sp.limit
	cm := 0 // measure of the part so far
	if reopen != nil {
		cm = reopen.pre
	}
	fp, spi := sp.fi, sp.si
	fenceLike := lineLooksLikeFence(text[s:])
	prev, prev2 := noChar, noChar // the last two characters
	ri := 0                       // regional indicators in a row ending at prev
	i := s
	for i < n && cm <= limit {
		c := text[i]
		r, size := rune(c), 1
		if c >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(text[i:])
		}
		if (c < utf8.RuneSelf && splitASCIISpace[c]) || (c >= utf8.RuneSelf && unicode.IsSpace(r)) {
			j, nl, lineStart, breaking, w := sp.whiteRun(i)
			if i > s {
				cls := clsSpace
				switch {
				case nl >= 2:
					cls = clsPara
				case nl == 1:
					cls = clsLine
					if sp.fenceEdge(fp, i, lineStart) {
						cls = clsPara
					}
				case !breaking:
					cls = clsHard
				case isSentenceEnd(prev, prev2):
					cls = clsSentence
				}
				if nl == 0 && (fenceLike || looksLikeFence(text[j:])) {
					cls = clsFenceLike
				}
				if nl > 0 && fenceLike && !plainLineEnd(text[i:i+strings.IndexByte(text[i:j], '\n')]) {
					// Dropping white space other than spaces and tabs
					// could turn the line into a closing fence.
					cls = clsFenceLike
				}
				if cls > clsSpan {
					for spi < len(sp.spans) && sp.spans[spi].end <= i {
						spi++
					}
					if spi < len(sp.spans) && sp.spans[spi].start < i {
						cls = clsSpan
					}
				}
				sp.consider(&best, &fp, i, cls, cm)
				if j == n {
					return best, i, true
				}
			}
			cm += w
			if nl > 0 {
				fenceLike = lineLooksLikeFence(text[lineStart:])
			}
			prev, prev2, ri = noChar, noChar, 0
			i = j
			continue
		}
		w := 1
		if c >= utf8.RuneSelf {
			w = sp.measure(text[i : i+size])
		}
		if prev != noChar {
			if cls := boundaryClass(prev, r, ri); boundaries || cls > clsHard {
				if cls > clsFenceLike && (fenceLike || looksLikeFence(text[i:])) {
					cls = clsFenceLike
				}
				sp.consider(&best, &fp, i, cls, cm)
			}
		}
		if isRegional(r) {
			ri++
		} else {
			ri = 0
		}
		prev2, prev = prev, r
		cm += w
		i += size
		if c < utf8.RuneSelf && !boundaries {
			// The rest of an ASCII word: no cut to note inside it.
			j := i
			for j < n && cm <= limit {
				if c := text[j]; c >= utf8.RuneSelf || splitASCIISpace[c] {
					break
				}
				j++
				cm++
			}
			switch j - i {
			case 0:
			case 1:
				prev2, prev = prev, rune(text[i])
			default:
				prev2, prev = rune(text[j-2]), rune(text[j-1])
			}
			i = j
		}
	}
	if cm <= limit {
		return best, n, true
	}
	return best, 0, false
}

// whiteRun measures the run of white space at i: its end, the line breaks
// in it, the start of the line after its last line break, whether it
// holds a character other than a no-break space, and its measure.
func (sp *splitter) whiteRun(i int) (j, nl, lineStart int, breaking bool, w int) {
	text := sp.text
	for j = i; j < len(text); {
		c := text[j]
		if c < utf8.RuneSelf {
			if !splitASCIISpace[c] {
				break
			}
			if c == '\n' {
				nl++
				lineStart = j + 1
			}
			breaking = true
			w++
			j++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[j:])
		if !unicode.IsSpace(r) {
			break
		}
		if r != '\u00A0' && r != '\u2007' && r != '\u202F' {
			breaking = true
		}
		w += sp.measure(text[j : j+size])
		j += size
	}
	return j, nl, lineStart, breaking, w
}

// fenceEdge reports whether a line break at i sits just after a closing
// fence line or just before an opener line (lineStart being the start of
// the line after it).
func (sp *splitter) fenceEdge(fp, i, lineStart int) bool {
	for k := fp; k < len(sp.fences) && sp.fences[k].a <= lineStart; k++ {
		f := &sp.fences[k]
		if f.a == lineStart || (f.runEnd == i && f.c < len(sp.text)) {
			return true
		}
	}
	return false
}

// consider records a cut at p of class cls for a part measuring cost up
// to p, if it is allowed and fits. fp tracks the fence at p.
func (sp *splitter) consider(best *[numClasses]splitCut, fp *int, p int, cls cutClass, cost int) {
	fs := sp.fences
	for *fp < len(fs) && fs[*fp].d < p {
		*fp++
	}
	var open *codeFence
	if *fp < len(fs) {
		if f := &fs[*fp]; f.repair && p > f.a && p < f.runEnd {
			switch {
			case p < f.b: // in the opener line: only right after it
				if p != f.openEnd {
					return
				}
				cls = clsEmpty
			case p < f.c: // in the body: worse than the same cut outside
				if p >= f.last {
					cls = clsEmpty
				} else if cls > clsSpace {
					cls--
				}
			default: // in the closing line
				return
			}
			open = f
			cost += f.post
		}
	}
	if cost <= sp.limit {
		best[cls] = splitCut{pos: p, cost: cost, f: open, ok: true}
	}
}

// chooseCut picks the cut: the best class whose cut fills at least thr;
// else the rightmost cut at white space outside code spans; else the
// best of the rest.
func chooseCut(best *[numClasses]splitCut, thr int) (splitCut, bool) {
	for c := clsPara; c >= clsSpace; c-- {
		if best[c].ok && best[c].cost >= thr {
			return best[c], true
		}
	}
	var r splitCut
	for c := clsSpace; c <= clsPara; c++ {
		if best[c].ok && (!r.ok || best[c].pos > r.pos) {
			r = best[c]
		}
	}
	if r.ok {
		return r, true
	}
	for c := clsSpan; c >= clsForce; c-- {
		if best[c].ok {
			return best[c], true
		}
	}
	return splitCut{}, false
}

// anyAbove reports whether best holds a cut of class cls or better.
func anyAbove(best *[numClasses]splitCut, cls cutClass) bool {
	for c := cls; c < numClasses; c++ {
		if best[c].ok {
			return true
		}
	}
	return false
}

// boundaryClass ranks a cut between two characters prev and r (ri
// regional indicators ending at prev): inside one character; between CJK
// characters, where CJK text breaks lines, after a CJK full stop or comma,
// but never before closing or after opening CJK punctuation; otherwise
// inside a word.
func boundaryClass(prev, r rune, ri int) cutClass {
	if joinsCharacter(prev, r, ri) {
		return clsForce
	}
	if prev < 0x2E80 && r < 0x2E80 {
		return clsHard
	}
	if strings.ContainsRune(cjkNoBreakAfter, prev) || strings.ContainsRune(cjkNoBreakBefore, r) {
		return clsHard
	}
	switch prev {
	case '。', '！', '？', '．':
		return clsSentence
	}
	if isCJK(prev) || isCJK(r) {
		return clsSpace
	}
	return clsHard
}

// CJK punctuation a line may not start with, and may not end with.
const (
	cjkNoBreakBefore = "、。，．：；！？」』）〕］｝〉》〙〗〟ー々ゝゞヽヾ・ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ｡｣､"
	cjkNoBreakAfter  = "「『（〔［｛〈《〘〖〝｢"
)

// isCJK reports whether r is a Chinese or Japanese character or CJK
// punctuation: text written without spaces, which may break between any
// two characters. (Korean is written with spaces.)
func isCJK(r rune) bool {
	switch {
	case r < 0x2E80:
		return false
	case r <= 0x312F: // radicals, CJK symbols and punctuation, kana, bopomofo
		return r <= 0x2FDF || r >= 0x3000
	case r >= 0x31F0 && r <= 0x31FF, // katakana extensions
		r >= 0x3400 && r <= 0x4DBF, r >= 0x4E00 && r <= 0x9FFF, // ideographs
		r >= 0xF900 && r <= 0xFAFF,   // compatibility ideographs
		r >= 0xFF01 && r <= 0xFF9F,   // full-width forms, half-width kana
		r >= 0x20000 && r <= 0x3FFFF: // ideograph extensions
		return true
	}
	return false
}

// assemblePart makes a part from its content, reopening and closing fences.
func assemblePart(reopen *codeFence, content string, close *codeFence) string {
	switch {
	case reopen == nil && close == nil:
		return content
	case reopen == nil:
		return content + close.eol + close.close
	case close == nil:
		return reopen.open + reopen.eol + content
	default:
		return reopen.open + reopen.eol + content + close.eol + close.close
	}
}

// skip returns where the part after a cut at p starts: past the white
// space at p, at the start of its line when that white space held a line
// break.
func (sp *splitter) skip(p int) int {
	text := sp.text
	lineStart := -1
	i := p
	for i < len(text) {
		c := text[i]
		if c < utf8.RuneSelf {
			if !splitASCIISpace[c] {
				break
			}
			i++
			if c == '\n' {
				lineStart = i
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		if !unicode.IsSpace(r) {
			break
		}
		i += size
	}
	if i < len(text) && lineStart >= 0 {
		return lineStart
	}
	return i
}

// plainLineEnd reports whether the white space ending a line (before its
// LF) is only spaces and tabs, and a CR of a CRLF: what a closing fence
// line may end with.
func plainLineEnd(ws string) bool {
	ws = strings.TrimSuffix(ws, "\r")
	for i := 0; i < len(ws); i++ {
		if ws[i] != ' ' && ws[i] != '\t' {
			return false
		}
	}
	return true
}

// looksLikeFence reports whether s starts with ``` or ~~~.
func looksLikeFence(s string) bool {
	return len(s) >= 3 && (s[:3] == "```" || s[:3] == "~~~")
}

// lineLooksLikeFence reports whether line starts with at most 3 spaces
// and then ``` or ~~~.
func lineLooksLikeFence(line string) bool {
	for i := 0; i < 4 && i < len(line); i++ {
		if line[i] != ' ' {
			return looksLikeFence(line[i:])
		}
	}
	return false
}

// isSentenceEnd reports whether the characters before a space end a
// sentence: . ! ? or … possibly followed by a closing quote or bracket.
func isSentenceEnd(prev, prev2 rune) bool {
	switch prev {
	case '.', '!', '?', '…', '。', '！', '？':
		return true
	case '"', '\'', ')', ']', '”', '’', '»', '*', '_':
		switch prev2 {
		case '.', '!', '?', '…', '。', '！', '？':
			return true
		}
	}
	return false
}

// joinsCharacter reports whether r continues the character prev belongs
// to, a cheap approximation of Unicode grapheme clusters: r is a combining
// mark, a joiner, an emoji modifier or tag, or prev is a zero-width
// joiner, or r completes a flag (ri regional indicators precede it).
func joinsCharacter(prev, r rune, ri int) bool {
	if r < 0x300 && prev < 0x300 {
		return false
	}
	switch {
	case prev == '\u200D':
		return true
	case r == '\u200C' || r == '\u200D':
		return true
	case r >= 0x1F3FB && r <= 0x1F3FF: // emoji skin tone modifiers
		return true
	case r >= 0xE0020 && r <= 0xE007F: // emoji tag sequences
		return true
	case isRegional(r) && ri%2 == 1:
		return true
	}
	return r >= 0x300 && unicode.Is(unicode.M, r)
}

// isRegional reports whether r is a regional indicator (flag half).
func isRegional(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }
