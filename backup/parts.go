package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// partWriter cuts the tar stream into chunks of PartSize bytes and hands each
// to one of Parallel workers, which compresses it alone (one zstd frame, so
// restore can decompress parts independently), hashes and uploads it. At most
// 2×Parallel+1 chunks are in memory: one filling, Parallel queued, Parallel
// in the workers.
type partWriter struct {
	ctx    context.Context
	store  Store
	prefix string
	size   int64
	queue  chan pendingPart
	free   chan []byte
	wg     sync.WaitGroup

	mu    sync.Mutex
	err   error
	parts []Part
	total int64
	seq   int
}

type pendingPart struct {
	seq  int
	data []byte
}

func newPartWriter(ctx context.Context, s Store, prefix string, opts PushOptions) (*partWriter, error) {
	p := &partWriter{ctx: ctx, store: s, prefix: prefix, size: opts.PartSize,
		queue: make(chan pendingPart, opts.Parallel), free: make(chan []byte, 2*opts.Parallel+1)}
	encoders := make([]*zstd.Encoder, opts.Parallel)
	for i := range encoders {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(opts.CompressLevel)),
			zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
		if err != nil {
			return nil, fmt.Errorf("zstd level %d: %w", opts.CompressLevel, err)
		}
		encoders[i] = enc
	}
	p.wg.Add(len(encoders))
	for _, enc := range encoders {
		go p.work(enc)
	}
	return p, nil
}

// readFrom reads the whole stream into parts, also writing it to watch.
// It returns the stream's size.
func (p *partWriter) readFrom(r io.Reader, watch io.Writer) (int64, error) {
	var total int64
	for {
		buf := p.buffer()
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			_, _ = watch.Write(buf[:n])
			total += int64(n)
			p.queue <- pendingPart{seq: p.seq, data: buf[:n]}
			p.seq++
		}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return total, p.failed()
		case err != nil:
			return total, err
		}
		if err := p.failed(); err != nil {
			return total, err
		}
	}
}

// buffer reuses a chunk a worker is done with, or makes one.
func (p *partWriter) buffer() []byte {
	select {
	case b := <-p.free:
		return b[:p.size]
	default:
		return make([]byte, p.size)
	}
}

func (p *partWriter) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *partWriter) work(enc *zstd.Encoder) {
	defer p.wg.Done()
	var out []byte
	for part := range p.queue {
		if p.failed() == nil {
			out = enc.EncodeAll(part.data, out[:0])
			p.upload(part.seq, len(part.data), out)
		}
		select {
		case p.free <- part.data:
		default:
		}
	}
}

func (p *partWriter) upload(seq, rawSize int, data []byte) {
	sum := sha256.Sum256(data)
	key := fmt.Sprintf("%spart-%05d.tar.zst", p.prefix, seq)
	err := p.store.Put(p.ctx, key, bytes.NewReader(data), int64(len(data)), nil)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if p.err == nil {
			p.err = err
		}
		return
	}
	p.parts = append(p.parts, Part{seq: seq, Key: key, Size: int64(len(data)), RawSize: int64(rawSize), SHA256: hex.EncodeToString(sum[:])})
	p.total += int64(len(data))
}

// close waits for the workers. With ok false (the stream failed) queued
// parts are dropped. Parts upload in any order; the manifest lists them in
// stream order.
func (p *partWriter) close(ok bool) error {
	if !ok {
		p.mu.Lock()
		if p.err == nil {
			p.err = errors.New("stream failed")
		}
		p.mu.Unlock()
	}
	close(p.queue)
	p.wg.Wait()
	sort.Slice(p.parts, func(i, j int) bool { return p.parts[i].seq < p.parts[j].seq })
	if !ok {
		return nil
	}
	return p.err
}
