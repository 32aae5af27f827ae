package prompt

import "strings"

// layout is one rendering of a message list: the leading system messages
// (the head) plus the history from cut on. Render and Fit share it, so the
// prompt Fit measures is the prompt it writes.
type layout struct {
	t    *Template
	msgs []Message
	h    int // msgs[:h] are the leading system messages
	cut  int // first kept history message, h <= cut <= len(msgs)

	// trimIdx, if >= 0, is the message whose content is trimmed instead.
	trimIdx int
	trimmed string

	sys    sstr // folded system text (fold templates)
	hasSys bool // a non-empty system text is folded
}

func newLayout(t *Template, msgs []Message) *layout {
	l := &layout{t: t, msgs: msgs, trimIdx: -1}
	for l.h < len(msgs) && msgs[l.h].Role == RoleSystem {
		l.h++
	}
	l.cut = l.h
	if t.fold && l.h > 0 {
		s := msgs[0].Content
		if l.h > 1 {
			parts := make([]string, l.h)
			for i := range parts {
				parts[i] = msgs[i].Content
			}
			s = strings.Join(parts, mergeSep)
		}
		l.sys = measure(s)
		l.hasSys = s != ""
	}
	return l
}

// eff is the role message i is rendered as.
func (l *layout) eff(i int) role {
	if l.t.flatten {
		return roleUser
	}
	r, _ := parseRole(l.msgs[i].Role)
	if r == roleSystem && (l.t.fold || l.t.headSystemOnly) {
		return roleUser
	}
	return r
}

// joins reports whether history message i continues the turn of message
// i-1, both kept.
func (l *layout) joins(i int) bool {
	if i <= l.h {
		return false
	}
	e := l.eff(i)
	return e == l.eff(i-1) && (l.t.merge || e == roleSystem)
}

// wrap is the markup around one message's body.
type wrap struct {
	pre  [4]sstr
	np   int
	post sstr
}

func (w *wrap) push(s sstr) { w.pre[w.np] = s; w.np++ }

func (w *wrap) size() size {
	n := w.post.n
	for _, p := range w.pre[:w.np] {
		n = n.add(p.n)
	}
	return n
}

// wrap returns the markup around history message i; first reports whether i
// is the first kept history message.
func (l *layout) wrap(i int, first bool) (w wrap) {
	t := l.t
	e := l.eff(i)
	switch {
	case !first && l.joins(i):
		w.push(t.sep)
	case first && t.strict && e == roleAssistant:
		// Strict templates open with a user turn: add one, carrying the
		// folded system prompt if there is one.
		w.push(t.turns[roleUser].open)
		if l.hasSys {
			w.push(l.sys)
		}
		w.push(t.turns[roleUser].close)
		w.push(t.turns[e].open)
	default:
		w.push(t.turns[e].open)
		if first && l.hasSys && e == roleUser {
			w.push(t.foldOpen)
			w.push(l.sys)
			w.push(t.foldClose)
		}
	}
	if i == len(l.msgs)-1 || !l.joins(i+1) {
		w.post = t.turns[e].close
	}
	return w
}

// name is the cleaned speaker name rendered before message i's content, or "".
func (l *layout) name(i int) string {
	m := &l.msgs[i]
	if m.Name == "" || m.Role != RoleUser {
		return ""
	}
	return cleanName(m.Name)
}

const nameSep = ": "

var nameSepSize = measure(nameSep).n

func (l *layout) content(i int) string {
	if i == l.trimIdx {
		return l.trimmed
	}
	return l.msgs[i].Content
}

// bodySize measures message i's name and content: the only per-message
// work that is proportional to its length.
func (l *layout) bodySize(i int) size {
	n := measure(l.content(i)).n
	if name := l.name(i); name != "" {
		n = n.add(measure(name).n).add(nameSepSize)
	}
	return n
}

// fixedSize measures what every cut shares: the prefix, the native system
// turn, the generation prompt, and, with no history at all, the user turn
// made of the folded system text or added for a strict template.
func (l *layout) fixedSize() size {
	t := l.t
	n := t.prefix.n.add(t.gen.n)
	if l.h > 0 && !t.fold {
		sys := t.turns[roleSystem]
		n = n.add(sys.open.n).add(sys.close.n)
		for i := 0; i < l.h; i++ {
			if i > 0 {
				n = n.add(t.sep.n)
			}
			n = n.add(measure(l.msgs[i].Content).n)
		}
	}
	if l.h == len(l.msgs) && (l.hasSys || t.strict) {
		u := t.turns[roleUser]
		n = n.add(u.open.n).add(l.sys.n).add(u.close.n)
	}
	return n
}

// sink writes to a builder, or only counts bytes when b is nil.
type sink struct {
	b *strings.Builder
	n int
}

func (s *sink) put(x string) {
	if s.b == nil {
		s.n += len(x)
		return
	}
	s.b.WriteString(x)
}

func (l *layout) emit(s *sink) {
	t := l.t
	s.put(t.prefix.s)
	if l.h > 0 && !t.fold {
		s.put(t.turns[roleSystem].open.s)
		for i := 0; i < l.h; i++ {
			if i > 0 {
				s.put(t.sep.s)
			}
			s.put(l.msgs[i].Content)
		}
		s.put(t.turns[roleSystem].close.s)
	}
	n := len(l.msgs)
	if l.h == n && (l.hasSys || t.strict) {
		// No history: the folded system text becomes the user's turn, and
		// strict templates get the user turn they must have.
		s.put(t.turns[roleUser].open.s)
		s.put(l.sys.s)
		s.put(t.turns[roleUser].close.s)
	}
	for i := l.cut; i < n; i++ {
		w := l.wrap(i, i == l.cut)
		for _, p := range w.pre[:w.np] {
			s.put(p.s)
		}
		if name := l.name(i); name != "" {
			s.put(name)
			s.put(nameSep)
		}
		s.put(l.content(i))
		s.put(w.post.s)
	}
	s.put(t.gen.s)
}

// build writes the prompt with one allocation; bytes is its length if the
// caller already knows it, else -1.
func (l *layout) build(bytes int) string {
	if bytes < 0 {
		var c sink
		l.emit(&c)
		bytes = c.n
	}
	var b strings.Builder
	b.Grow(bytes)
	l.emit(&sink{b: &b})
	return b.String()
}
