package api

import (
	"fmt"
	"sort"
	"strings"
)

// Selector matches label sets. Parse the kubectl `-l` syntax with
// ParseSelector or convert a LabelSelector with AsSelector.
type Selector interface {
	Matches(labels map[string]string) bool
	Empty() bool
	String() string
}

// FieldSelector matches objects by a few well-known fields
// (metadata.name, metadata.namespace, spec.nodeName, status.phase, ...).
// Parse with ParseFieldSelector.
type FieldSelector interface {
	Matches(o Object) bool
	Empty() bool
	String() string
}

type selectorOp int

const (
	opEquals selectorOp = iota
	opNotEquals
	opIn
	opNotIn
	opExists
	opDoesNotExist
)

// requirement is one ANDed term of a label selector; values are sorted.
type requirement struct {
	key    string
	op     selectorOp
	values []string
}

func (r requirement) matches(labels map[string]string) bool {
	v, ok := labels[r.key]
	switch r.op {
	case opEquals:
		return ok && v == r.values[0]
	case opNotEquals:
		return !ok || v != r.values[0]
	case opIn:
		return ok && contains(r.values, v)
	case opNotIn:
		return !ok || !contains(r.values, v)
	case opExists:
		return ok
	case opDoesNotExist:
		return !ok
	}
	return false
}

func (r requirement) appendString(b *strings.Builder) {
	switch r.op {
	case opEquals:
		b.WriteString(r.key + "=" + r.values[0])
	case opNotEquals:
		b.WriteString(r.key + "!=" + r.values[0])
	case opIn, opNotIn:
		b.WriteString(r.key)
		if r.op == opIn {
			b.WriteString(" in (")
		} else {
			b.WriteString(" notin (")
		}
		b.WriteString(strings.Join(r.values, ","))
		b.WriteString(")")
	case opExists:
		b.WriteString(r.key)
	case opDoesNotExist:
		b.WriteString("!" + r.key)
	}
}

// requirements is the Selector of ParseSelector, AsSelector and Everything.
type requirements []requirement

var _ Selector = requirements(nil)

func (rs requirements) Matches(labels map[string]string) bool {
	for _, r := range rs {
		if !r.matches(labels) {
			return false
		}
	}
	return true
}

func (rs requirements) Empty() bool { return len(rs) == 0 }

func (rs requirements) String() string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		r.appendString(&b)
	}
	return b.String()
}

// nothing matches no labels at all.
type nothing struct{}

func (nothing) Matches(map[string]string) bool { return false }
func (nothing) Empty() bool                    { return false }
func (nothing) String() string                 { return "<none>" }

// Everything returns the selector that matches every label set.
func Everything() Selector { return requirements(nil) }

// Nothing returns the selector that matches no label set (a nil
// LabelSelector).
func Nothing() Selector { return nothing{} }

// SelectorFromSet returns the selector requiring every key=value of set
// (as a Service's spec.selector does). An empty set selects everything.
func SelectorFromSet(set map[string]string) Selector {
	rs := make(requirements, 0, len(set))
	for k, v := range set {
		rs = append(rs, requirement{key: k, op: opEquals, values: []string{v}})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].key < rs[j].key })
	return rs
}

// ParseSelector parses the kubectl -l syntax: comma-separated requirements
// `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k` (exists) and `!k`
// (does not exist). Keys and values must be valid label keys and values.
// The empty string selects everything.
func ParseSelector(s string) (Selector, error) {
	p := selectorParser{s: s}
	rs, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("parse selector %q: %w", s, err)
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].key < rs[j].key })
	return rs, nil
}

type selectorParser struct {
	s   string
	pos int
}

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokIdent
	tokComma
	tokOpen
	tokClose
	tokNot   // !
	tokEq    // = or ==
	tokNotEq // !=
	tokIn    // in
	tokNotIn // notin
	tokBadRune
)

func (p *selectorParser) skipSpace() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\n') {
		p.pos++
	}
}

func isIdentByte(c byte) bool {
	return c == '-' || c == '_' || c == '.' || c == '/' ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// next returns the next token and its text, without keyword handling.
func (p *selectorParser) next() (tokenKind, string) {
	p.skipSpace()
	if p.pos >= len(p.s) {
		return tokEOF, ""
	}
	start := p.pos
	c := p.s[p.pos]
	switch {
	case c == ',':
		p.pos++
		return tokComma, ","
	case c == '(':
		p.pos++
		return tokOpen, "("
	case c == ')':
		p.pos++
		return tokClose, ")"
	case c == '!':
		p.pos++
		if p.pos < len(p.s) && p.s[p.pos] == '=' {
			p.pos++
			return tokNotEq, "!="
		}
		return tokNot, "!"
	case c == '=':
		p.pos++
		if p.pos < len(p.s) && p.s[p.pos] == '=' {
			p.pos++
			return tokEq, "=="
		}
		return tokEq, "="
	case isIdentByte(c):
		for p.pos < len(p.s) && isIdentByte(p.s[p.pos]) {
			p.pos++
		}
		return tokIdent, p.s[start:p.pos]
	}
	p.pos++
	return tokBadRune, string(c)
}

func (p *selectorParser) peek() (tokenKind, string) {
	pos := p.pos
	k, t := p.next()
	p.pos = pos
	return k, t
}

func (p *selectorParser) parse() (requirements, error) {
	var rs requirements
	if k, _ := p.peek(); k == tokEOF {
		return rs, nil
	}
	for {
		r, err := p.requirement()
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
		switch k, t := p.next(); k {
		case tokEOF:
			return rs, nil
		case tokComma:
		default:
			return nil, fmt.Errorf("at position %d: found %q, expected ',' or end of selector", p.pos-len(t), t)
		}
	}
}

func (p *selectorParser) requirement() (requirement, error) {
	k, t := p.next()
	if k == tokNot {
		key, err := p.key()
		if err != nil {
			return requirement{}, err
		}
		return requirement{key: key, op: opDoesNotExist}, nil
	}
	if k != tokIdent {
		return requirement{}, fmt.Errorf("at position %d: found %q, expected a label key", p.pos-len(t), t)
	}
	key := t
	if err := checkLabelKey(key); err != nil {
		return requirement{}, err
	}
	k, t = p.peek()
	switch {
	case k == tokEOF || k == tokComma:
		return requirement{key: key, op: opExists}, nil
	case k == tokEq || k == tokNotEq:
		p.next()
		op := opEquals
		if k == tokNotEq {
			op = opNotEquals
		}
		v := ""
		if vk, vt := p.peek(); vk == tokIdent {
			p.next()
			v = vt
		}
		if err := checkLabelValue(v); err != nil {
			return requirement{}, err
		}
		return requirement{key: key, op: op, values: []string{v}}, nil
	case k == tokIdent && (t == "in" || t == "notin"):
		p.next()
		op := opIn
		if t == "notin" {
			op = opNotIn
		}
		vals, err := p.valueSet()
		if err != nil {
			return requirement{}, err
		}
		return requirement{key: key, op: op, values: vals}, nil
	}
	return requirement{}, fmt.Errorf("at position %d: found %q, expected one of '=', '==', '!=', 'in', 'notin', ',' or end of selector", p.pos, t)
}

func (p *selectorParser) key() (string, error) {
	k, t := p.next()
	if k != tokIdent {
		return "", fmt.Errorf("at position %d: found %q, expected a label key", p.pos-len(t), t)
	}
	return t, checkLabelKey(t)
}

// valueSet parses "(a,b,c)"; values may be empty, as in Kubernetes.
func (p *selectorParser) valueSet() ([]string, error) {
	if k, t := p.next(); k != tokOpen {
		return nil, fmt.Errorf("at position %d: found %q, expected '('", p.pos-len(t), t)
	}
	var vals []string
	for {
		v := ""
		k, t := p.next()
		if k == tokIdent {
			v = t
			k, t = p.next()
		}
		if err := checkLabelValue(v); err != nil {
			return nil, err
		}
		vals = append(vals, v)
		switch k {
		case tokClose:
			sort.Strings(vals)
			return vals, nil
		case tokComma:
		default:
			return nil, fmt.Errorf("at position %d: found %q, expected ',' or ')'", p.pos-len(t), t)
		}
	}
}

func checkLabelKey(k string) error {
	if msgs := qualifiedNameErrors(k); len(msgs) > 0 {
		return fmt.Errorf("invalid label key %q: %s", k, strings.Join(msgs, "; "))
	}
	return nil
}

func checkLabelValue(v string) error {
	if msgs := labelValueErrors(v); len(msgs) > 0 {
		return fmt.Errorf("invalid label value %q: %s", v, strings.Join(msgs, "; "))
	}
	return nil
}
