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
	mu     sync.Mutex
	out    io.Writer
	prefix []byte
	buf    []byte
}

func newPrefixWriter(out io.Writer, name string) *prefixWriter {
	return &prefixWriter{out: out, prefix: []byte("[" + name + "] ")}
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if err := w.line(w.buf[:i+1]); err != nil {
			return len(p), err
		}
		w.buf = w.buf[i+1:]
	}
	// A step printing one endless line (a progress bar) must not grow the
	// buffer without bound.
	if len(w.buf) > 64<<10 {
		err := w.line(append(w.buf, '\n'))
		w.buf = w.buf[:0]
		return len(p), err
	}
	return len(p), nil
}

func (w *prefixWriter) line(l []byte) error {
	_, err := w.out.Write(append(append([]byte{}, w.prefix...), l...))
	return err
}

// Flush writes a last line that had no newline.
func (w *prefixWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		_ = w.line(append(w.buf, '\n'))
		w.buf = nil
	}
}
