package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// fetchedPart is one part's bytes (decompressed when the parts are framed).
type fetchedPart struct {
	data []byte
	err  error
}

// fetchParts writes the backup's tar stream (or, for unframed backups, its
// compressed stream) to w in part order, while up to parallel workers
// download, verify and decompress the parts ahead of the writer. At most
// 2×parallel parts are held in memory.
func fetchParts(ctx context.Context, s Store, m *Manifest, parallel int, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]chan fetchedPart, len(m.Parts))
	for i := range results {
		results[i] = make(chan fetchedPart, 1)
	}
	window := make(chan struct{}, 2*parallel)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
			if err != nil {
				for i := range jobs {
					results[i] <- fetchedPart{err: err}
				}
				return
			}
			defer dec.Close()
			for i := range jobs {
				data, err := fetchPart(ctx, s, m.Parts[i], m.FramedParts, dec)
				results[i] <- fetchedPart{data: data, err: err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := range m.Parts {
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()
	defer cancel()
	for i := range m.Parts {
		var r fetchedPart
		select {
		case r = <-results[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.err != nil {
			return r.err
		}
		if _, err := w.Write(r.data); err != nil {
			return err
		}
		<-window
	}
	return nil
}

// fetchPart downloads one part and checks its size and sha256; framed parts
// are decompressed and checked against their recorded raw size.
func fetchPart(ctx context.Context, s Store, p Part, framed bool, dec *zstd.Decoder) ([]byte, error) {
	r, err := s.Get(ctx, p.Key)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(int(p.Size))
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(&buf, h), r)
	_ = r.Close()
	if err != nil {
		return nil, fmt.Errorf("part %s: %w", p.Key, err)
	}
	if n != p.Size || hex.EncodeToString(h.Sum(nil)) != p.SHA256 {
		return nil, fmt.Errorf("part %s: got %d bytes sha256 %x, manifest says %d bytes sha256 %s", p.Key, n, h.Sum(nil), p.Size, p.SHA256)
	}
	if !framed {
		return buf.Bytes(), nil
	}
	raw, err := dec.DecodeAll(buf.Bytes(), make([]byte, 0, p.RawSize))
	if err != nil {
		return nil, fmt.Errorf("part %s: decompress: %w", p.Key, err)
	}
	if int64(len(raw)) != p.RawSize {
		return nil, fmt.Errorf("part %s: decompressed to %d bytes, manifest says %d", p.Key, len(raw), p.RawSize)
	}
	return raw, nil
}
