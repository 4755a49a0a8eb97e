package render

import (
	"strconv"
	"strings"
)

// pathSegment is a mapping key or a sequence index.
type pathSegment struct {
	key     string
	index   int
	isIndex bool
}

// fieldPath locates a field inside a document, as in "spec.domains[0]".
type fieldPath []pathSegment

// at returns the path extended by keys; it never aliases p's array, so
// sibling paths built from one parent stay independent.
func (p fieldPath) at(keys ...string) fieldPath {
	out := make(fieldPath, len(p), len(p)+len(keys))
	copy(out, p)
	for _, k := range keys {
		out = append(out, pathSegment{key: k})
	}
	return out
}

// index returns the path extended by a sequence index.
func (p fieldPath) index(i int) fieldPath {
	out := make(fieldPath, len(p), len(p)+1)
	copy(out, p)
	return append(out, pathSegment{index: i, isIndex: true})
}

// String spells the path the way kubectl explain and CRD errors do; keys
// that are not plain identifiers (label keys, env names with dots) are
// bracketed so the path stays unambiguous.
func (p fieldPath) String() string {
	var b strings.Builder
	for i, s := range p {
		switch {
		case s.isIndex:
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		case plainKey(s.key):
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
		default:
			b.WriteString("[" + strconv.Quote(s.key) + "]")
		}
	}
	return b.String()
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if r != '_' && r != '-' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// field builds a fieldPath from plain keys, for the fixed paths of the
// high-level kinds ("spec", "port").
func field(keys ...string) fieldPath {
	p := make(fieldPath, len(keys))
	for i, k := range keys {
		p[i] = pathSegment{key: k}
	}
	return p
}
