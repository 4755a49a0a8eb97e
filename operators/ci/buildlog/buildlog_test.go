package buildlog

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"homeostat.dev/homeostat/internal/s3test"
)

// TestShipChunksThenFinal runs the shipper's steps against a real MinIO:
// chunks carry whole lines while the build runs, a restarted shipper goes
// on where the last one stopped, the final object replaces the chunks, and
// Read gives the same bytes at every stage.
func TestShipChunksThenFinal(t *testing.T) {
	srv, err := s3test.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	ctx := context.Background()
	store, err := srv.Open(ctx, "logs", "ci")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "build.log")
	appendLog := func(s string) {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString(s)
		_ = f.Close()
	}
	read := func() string {
		var b bytes.Buffer
		if err := Read(ctx, store, "ns", "b1", &b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}

	if err := Read(ctx, store, "ns", "b1", &bytes.Buffer{}); !errors.Is(err, ErrNoLog) {
		t.Fatalf("before any shipment: %v, want ErrNoLog", err)
	}
	s := &Shipper{Store: store, Namespace: "ns", Build: "b1", File: file}
	if err := s.ship(ctx); err != nil { // no file yet: the agent has not started
		t.Fatal(err)
	}
	appendLog("[test] one\n[test] tw")
	if err := s.ship(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "[test] one\n" {
		t.Fatalf("after the first chunk: %q (a partial line must wait)", got)
	}
	appendLog("o\n")
	if err := s.ship(ctx); err != nil {
		t.Fatal(err)
	}
	// A restarted shipper (the sidecar restarted) resumes after the stored chunks.
	appendLog("[test] three\n")
	s2 := &Shipper{Store: store, Namespace: "ns", Build: "b1", File: file}
	if err := s2.resume(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.ship(ctx); err != nil {
		t.Fatal(err)
	}
	want := "[test] one\n[test] two\n[test] three\n"
	if got := read(); got != want {
		t.Fatalf("from chunks: %q, want %q", got, want)
	}
	chunks, _ := store.List(ctx, "ns/b1/chunks/")
	if len(chunks) != 3 {
		t.Fatalf("%d chunks, want 3", len(chunks))
	}

	appendLog("[agent] build succeeded in 1s\n")
	if err := s2.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	want += "[agent] build succeeded in 1s\n"
	if got := read(); got != want {
		t.Fatalf("final: %q, want %q", got, want)
	}
	objs, _ := store.List(ctx, "ns/b1/")
	if len(objs) != 1 || objs[0].Key != "ns/b1/log.gz" {
		t.Fatalf("after finish the store holds %v, want only the final object", objs)
	}
	if u := URL(store.Config(), "ns", "b1"); u != "s3://logs/ci/ns/b1/log.gz" {
		t.Fatalf("URL %s", u)
	}

	if err := Delete(ctx, store, "ns", "b1"); err != nil {
		t.Fatal(err)
	}
	if err := Read(ctx, store, "ns", "b1", &bytes.Buffer{}); !errors.Is(err, ErrNoLog) {
		t.Fatalf("after delete: %v, want ErrNoLog", err)
	}
}

// TestShipLongLineInPieces: a line longer than a chunk is not held back.
func TestShipLongLineInPieces(t *testing.T) {
	srv, err := s3test.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	ctx := context.Background()
	store, err := srv.Open(ctx, "logs", "")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "build.log")
	long := strings.Repeat("x", maxChunk+10)
	if err := os.WriteFile(file, []byte(long), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Shipper{Store: store, Namespace: "ns", Build: "b", File: file}
	for i := 0; i < 2; i++ {
		if err := s.ship(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if err := Read(ctx, store, "ns", "b", &b); err != nil {
		t.Fatal(err)
	}
	if b.Len() != maxChunk {
		t.Fatalf("read %d bytes, want the first full chunk (%d)", b.Len(), maxChunk)
	}
}
