package agent

import (
	"bytes"
	"io"
	"sort"
	"strings"
)

// Masked is what a secret value is replaced by in a build's log.
const Masked = "***"

// masker replaces secret values in everything written through it. Writers
// upstream (the step prefixer, the agent's own lines) write whole lines, so
// a value is never split between two writes.
type masker struct {
	out    io.Writer
	values [][]byte // longest first, so a value holding another is masked whole
}

// newMasker masks each non-blank line of each value (a multi-line secret,
// such as a key file, shows up one line at a time).
func newMasker(out io.Writer, values []string) io.Writer {
	seen := map[string]bool{}
	var vs []string
	for _, v := range values {
		for _, line := range strings.Split(v, "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !seen[line] {
				seen[line] = true
				vs = append(vs, line)
			}
		}
	}
	if len(vs) == 0 {
		return out
	}
	sort.Slice(vs, func(i, j int) bool { return len(vs[i]) > len(vs[j]) })
	m := &masker{out: out}
	for _, v := range vs {
		m.values = append(m.values, []byte(v))
	}
	return m
}

func (m *masker) Write(p []byte) (int, error) {
	masked := p
	for _, v := range m.values {
		if bytes.Contains(masked, v) {
			masked = bytes.ReplaceAll(masked, v, []byte(Masked))
		}
	}
	if _, err := m.out.Write(masked); err != nil {
		return 0, err
	}
	return len(p), nil
}

// MaskString masks values in s as the log does, for messages that leave
// the pod some other way (the result's message).
func MaskString(s string, values []string) string {
	var b strings.Builder
	_, _ = newMasker(&b, values).Write([]byte(s))
	return b.String()
}
