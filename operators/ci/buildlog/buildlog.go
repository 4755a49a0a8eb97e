// Package buildlog keeps a build's log in an object store, so that it
// outlives the build's pod. While the build runs, Ship sends what the agent
// has written so far as gzip-compressed chunks, each named by the offset it
// starts at; when the build ends it writes the whole log as one object and
// drops the chunks. Read gives back the same bytes either way, from the
// final object or, for a build whose pod died before the end, from the
// chunks. The store is backup's (minio-go), so MinIO or any S3 serves.
package buildlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"homeostat.dev/homeostat/backup"
)

// FinalName is the object holding a finished build's whole log.
const FinalName = "log.gz"

// maxChunk bounds one chunk, so a chatty step is shipped in pieces.
const maxChunk = 4 << 20

// Dir is the folder of one build's log inside the store.
func Dir(namespace, build string) string { return namespace + "/" + build + "/" }

// URL says where a build's final log is: s3://BUCKET/PREFIX/NS/BUILD/log.gz.
func URL(cfg backup.Config, namespace, build string) string {
	return "s3://" + path.Join(cfg.Bucket, strings.Trim(cfg.Prefix, "/"), Dir(namespace, build), FinalName)
}

func chunkKey(namespace, build string, offset int64) string {
	return fmt.Sprintf("%schunks/%016d.gz", Dir(namespace, build), offset)
}

// Shipper sends one build's log file to the store.
type Shipper struct {
	Store     backup.Store
	Namespace string
	Build     string
	// File is the log the agent writes.
	File string
	// Interval between shipments; five seconds when zero.
	Interval time.Duration
	// Logf, when set, hears about store errors (which are retried).
	Logf func(format string, args ...any)

	offset int64 // bytes of File already in the store
}

// Run ships new output every Interval until ctx ends (the pod stops its
// sidecars once the agent is done); then call Finish.
func (s *Shipper) Run(ctx context.Context) {
	if err := s.resume(ctx); err != nil {
		s.logf("%v", err)
	}
	every := s.Interval
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.ship(ctx); err != nil && ctx.Err() == nil {
				s.logf("%v", err)
			}
		}
	}
}

func (s *Shipper) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// resume starts after the chunks a previous run of the shipper (a
// restarted sidecar) already stored.
func (s *Shipper) resume(ctx context.Context) error {
	chunks, err := s.Store.List(ctx, Dir(s.Namespace, s.Build)+"chunks/")
	if err != nil {
		return fmt.Errorf("list stored chunks: %w", err)
	}
	for _, c := range chunks {
		o, err := s.Store.Stat(ctx, c.Key)
		if err != nil {
			return err
		}
		start, _ := chunkOffset(c.Key)
		n, _ := strconv.ParseInt(o.Metadata["length"], 10, 64)
		if start+n > s.offset {
			s.offset = start + n
		}
	}
	return nil
}

// ship stores the whole lines written since the last shipment as one chunk.
func (s *Shipper) ship(ctx context.Context) error {
	data, err := s.readFrom(s.offset, maxChunk)
	if err != nil {
		return err
	}
	// A partial last line waits for its end, unless it fills the chunk.
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 && len(data) < maxChunk {
		data = data[:i+1]
	} else if len(data) < maxChunk {
		return nil
	}
	if len(data) == 0 {
		return nil
	}
	z := compress(data)
	meta := map[string]string{"length": strconv.Itoa(len(data))}
	if err := s.Store.Put(ctx, chunkKey(s.Namespace, s.Build, s.offset), bytes.NewReader(z), int64(len(z)), meta); err != nil {
		return err
	}
	s.offset += int64(len(data))
	return nil
}

// Finish writes the whole log as the final object and then drops the
// chunks. With no log file (the agent never started), nothing is written.
func (s *Shipper) Finish(ctx context.Context) error {
	data, err := os.ReadFile(s.File)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read build log: %w", err)
	}
	z := compress(data)
	dir := Dir(s.Namespace, s.Build)
	meta := map[string]string{"length": strconv.Itoa(len(data))}
	if err := s.Store.Put(ctx, dir+FinalName, bytes.NewReader(z), int64(len(z)), meta); err != nil {
		return err
	}
	chunks, err := s.Store.List(ctx, dir+"chunks/")
	if err != nil {
		return err
	}
	keys := make([]string, len(chunks))
	for i, c := range chunks {
		keys[i] = c.Key
	}
	return s.Store.Delete(ctx, keys...)
}

func (s *Shipper) readFrom(offset int64, limit int) ([]byte, error) {
	f, err := os.Open(s.File)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // the agent has not started yet
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(f, int64(limit)))
}

func compress(data []byte) []byte {
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	_, _ = z.Write(data)
	_ = z.Close()
	return b.Bytes()
}

// ErrNoLog says the store holds nothing for a build.
var ErrNoLog = errors.New("no log stored")

// Read writes a build's stored log to w: the final object when the build
// ended, else the chunks shipped so far.
func Read(ctx context.Context, store backup.Store, namespace, build string, w io.Writer) error {
	dir := Dir(namespace, build)
	rc, err := store.Get(ctx, dir+FinalName)
	if err == nil {
		defer func() { _ = rc.Close() }()
		return gunzip(rc, w)
	}
	if !errors.Is(err, backup.ErrNotFound) {
		return err
	}
	chunks, err := store.List(ctx, dir+"chunks/")
	if err != nil {
		return err
	}
	if len(chunks) == 0 {
		return fmt.Errorf("build %s/%s: %w", namespace, build, ErrNoLog)
	}
	var written int64
	for _, c := range chunks {
		start, ok := chunkOffset(c.Key)
		if !ok || start > written {
			return fmt.Errorf("build %s/%s: chunk %s: a gap in the stored log at byte %d", namespace, build, c.Key, written)
		}
		if err := readChunk(ctx, store, c.Key, &skipWriter{w: w, skip: written - start, n: &written}); err != nil {
			return err
		}
	}
	return nil
}

func readChunk(ctx context.Context, store backup.Store, key string, w io.Writer) error {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }()
	return gunzip(rc, w)
}

func gunzip(r io.Reader, w io.Writer) error {
	z, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("stored log: %w", err)
	}
	if _, err := io.Copy(w, z); err != nil {
		return fmt.Errorf("stored log: %w", err)
	}
	return z.Close()
}

// skipWriter drops the first skip bytes (a chunk overlapping what a
// restarted shipper stored before) and counts what it passes on.
type skipWriter struct {
	w    io.Writer
	skip int64
	n    *int64
}

func (s *skipWriter) Write(p []byte) (int, error) {
	total := len(p)
	if s.skip > 0 {
		d := min(s.skip, int64(len(p)))
		p, s.skip = p[d:], s.skip-d
	}
	n, err := s.w.Write(p)
	*s.n += int64(n)
	if err != nil {
		return 0, err
	}
	return total, nil
}

func chunkOffset(key string) (int64, bool) {
	base := strings.TrimSuffix(path.Base(key), ".gz")
	n, err := strconv.ParseInt(base, 10, 64)
	return n, err == nil
}

// Delete removes everything stored for a build.
func Delete(ctx context.Context, store backup.Store, namespace, build string) error {
	objs, err := store.List(ctx, Dir(namespace, build))
	if err != nil {
		return err
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return store.Delete(ctx, keys...)
}
