package agent

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"
	"time"

	"homeostat.dev/homeostat/operators/ci/steps"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// BenchmarkStepOverhead is what the agent adds to each step: a process
// group, `sh -c`, output piping and the result.
func BenchmarkStepOverhead(b *testing.B) {
	f := &steps.File{Timeout: time.Minute, Steps: []steps.Step{{Name: "noop", Run: "true"}}}
	dir := b.TempDir()
	env := os.Environ()
	for b.Loop() {
		if r := Run(context.Background(), f, Options{Dir: dir, Env: env, Out: io.Discard}); r.Phase != v1alpha1.BuildSucceeded {
			b.Fatal(r)
		}
	}
}

// BenchmarkPrefixWriter is the cost of prefixing a chatty step's output.
func BenchmarkPrefixWriter(b *testing.B) {
	chunk := bytes.Repeat([]byte("ok  	homeostat.dev/homeostat/some/package	0.123s\n"), 100)
	w := newPrefixWriter(io.Discard, "test")
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		if _, err := w.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
}
