package agent

import (
	"bytes"
	"strings"
	"testing"
)

func TestPrefixWriterSplitsLines(t *testing.T) {
	cases := []struct {
		name   string
		writes []string
		want   string
	}{
		{"whole lines", []string{"a\nb\n"}, "[s] a\n[s] b\n"},
		{"a line in pieces", []string{"hel", "lo\nwor", "ld"}, "[s] hello\n[s] world\n"},
		{"empty lines kept", []string{"\n\n"}, "[s] \n[s] \n"},
		{"endless line is cut", []string{strings.Repeat("x", 70<<10)}, "[s] " + strings.Repeat("x", 70<<10) + "\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			w := newPrefixWriter(&out, "s")
			for _, s := range c.writes {
				if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			w.Flush()
			if out.String() != c.want {
				t.Fatalf("got %q, want %q", trim(out.String()), trim(c.want))
			}
		})
	}
}

func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
