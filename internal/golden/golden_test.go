package golden

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestDiff(t *testing.T) {
	cases := []struct {
		name, want, got, has string
	}{
		{"changed line", "a\nb\nc\n", "a\nB\nc\n", "line 2:\n- b\n- c\n- \n+ B\n+ c\n+ \n"},
		{"line added at the end", "a\n", "a\nb\n", "line 2:\n- \n+ b\n+ \n"},
		{"trailing newline lost", "a\n", "a", "line 2:\n- \n"},
		{"same", "a\n", "a\n", "(no difference)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Diff(c.want, c.got); got != c.has {
				t.Errorf("Diff = %q, want %q", got, c.has)
			}
		})
	}
}

// recorder is a testing.TB that remembers failures instead of reporting them.
type recorder struct {
	testing.TB
	failed []string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Errorf(f string, a ...any) { r.failed = append(r.failed, f) }
func (r *recorder) Fatalf(f string, a ...any) { r.failed = append(r.failed, f); runtime.Goexit() }
func (r *recorder) Fatal(a ...any)            { r.failed = append(r.failed, "fatal"); runtime.Goexit() }

// assert runs Assert on its own goroutine, as the testing package runs a
// test, so that a Fatal ends only the assertion.
func (r *recorder) assert(p string, got []byte) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); Assert(r, p, got) }()
	wg.Wait()
}

func TestAssert(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "x.yaml")
	r := &recorder{TB: t}
	r.assert(p, []byte("x\n"))
	if len(r.failed) != 1 || !strings.Contains(r.failed[0], "-update") {
		t.Fatalf("a missing golden file must fail and name -update, got %q", r.failed)
	}
	*update = true
	r.assert(p, []byte("x\n"))
	*update = false
	if b, err := os.ReadFile(p); err != nil || string(b) != "x\n" {
		t.Fatalf("-update wrote %q, %v", b, err)
	}
	r.failed = nil
	r.assert(p, []byte("x\n"))
	r.assert(p, []byte("y\n"))
	if len(r.failed) != 1 {
		t.Fatalf("want exactly the differing result to fail, got %q", r.failed)
	}
}
