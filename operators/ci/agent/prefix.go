package agent

import (
	"bytes"
	"io"
	"sync"
)

// prefixWriter puts "[name] " in front of every line written through it, so
// the interleaved log of a build (or of `kubectl logs`) says which step
// printed what. Partial lines wait for their newline or Flush.
type prefixWriter struct {
	mu      sync.Mutex
	out     io.Writer
	prefix  []byte
	buf     []byte // a partial line waiting for its newline
	scratch []byte // prefix + line, reused so that steady output allocates nothing
}

func newPrefixWriter(out io.Writer, name string) *prefixWriter {
	return &prefixWriter{out: out, prefix: []byte("[" + name + "] ")}
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			break
		}
		err := w.line(p[:i+1])
		p = p[i+1:]
		if err != nil {
			return n - len(p), err
		}
	}
	// A step printing one endless line (a progress bar) must not grow the
	// buffer without bound.
	if len(w.buf) > 64<<10 {
		return n, w.line([]byte{'\n'})
	}
	return n, nil
}

// line writes the prefix, any buffered partial line and l in one Write, so
// lines of concurrent writers never interleave mid-line.
func (w *prefixWriter) line(l []byte) error {
	w.scratch = append(append(append(w.scratch[:0], w.prefix...), w.buf...), l...)
	w.buf = w.buf[:0]
	_, err := w.out.Write(w.scratch)
	return err
}

// Flush writes a last line that had no newline.
func (w *prefixWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		_ = w.line([]byte{'\n'})
	}
}
