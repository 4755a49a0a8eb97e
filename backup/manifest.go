package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	baseDir      = "basebackups/"
	manifestName = "manifest.json"
)

// Manifest describes one complete base backup. It is the last object a push
// writes: a backup folder without it is an interrupted upload and is ignored.
type Manifest struct {
	ID string `json:"id"`
	// Label names who asked for the backup (the operator writes its Backup
	// object's namespace/name), so a backup is found by what requested it
	// rather than guessed from start times when two run at once.
	Label string `json:"label,omitempty"`
	// StartLSN and StopLSN bound the WAL needed to make the backup consistent.
	StartLSN string `json:"startLSN"`
	StopLSN  string `json:"stopLSN"`
	Timeline int    `json:"timeline"`
	// StartWAL is the first WAL segment the backup needs; retention keeps it and
	// everything after it.
	StartWAL  string    `json:"startWAL"`
	PGVersion string    `json:"pgVersion"`
	StartTime time.Time `json:"startTime"`
	StopTime  time.Time `json:"stopTime"`
	// Size is the uncompressed tar size; CompressedSize what the parts hold.
	Size           int64  `json:"size"`
	CompressedSize int64  `json:"compressedSize"`
	Compression    string `json:"compression"`
	// CompressLevel is the zstd level the parts were written with.
	CompressLevel int `json:"compressLevel,omitempty"`
	// FramedParts says each part is a whole zstd frame of its own, so parts
	// decompress independently and in parallel. Backups written before
	// parallel push cut one stream at byte boundaries and restore serially.
	FramedParts bool   `json:"framedParts,omitempty"`
	Parts       []Part `json:"parts"`
}

// Part is one object of the compressed tar stream, in order.
type Part struct {
	seq    int    // position in the stream while uploading
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// RawSize is the part's uncompressed size (framed parts only).
	RawSize int64 `json:"rawSize,omitempty"`
}

func backupPrefix(id string) string { return baseDir + id + "/" }

// List returns the complete backups, oldest first, and the IDs of incomplete
// ones (folders without a manifest: interrupted or still running uploads).
func List(ctx context.Context, s Store) (complete []Manifest, incomplete []string, err error) {
	objs, err := s.List(ctx, baseDir)
	if err != nil {
		return nil, nil, err
	}
	hasManifest := map[string]bool{}
	var ids []string
	for _, o := range objs {
		id, file, ok := strings.Cut(strings.TrimPrefix(o.Key, baseDir), "/")
		if !ok {
			continue
		}
		if _, seen := hasManifest[id]; !seen {
			ids = append(ids, id)
			hasManifest[id] = false
		}
		if file == manifestName {
			hasManifest[id] = true
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !hasManifest[id] {
			incomplete = append(incomplete, id)
			continue
		}
		m, err := ReadManifest(ctx, s, id)
		if err != nil {
			return nil, nil, err
		}
		complete = append(complete, *m)
	}
	return complete, incomplete, nil
}

// ReadManifest reads the manifest of backup id; ErrNotFound when the backup
// does not exist or is incomplete.
func ReadManifest(ctx context.Context, s Store, id string) (*Manifest, error) {
	key := backupPrefix(id) + manifestName
	r, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", id, err)
	}
	defer func() { _ = r.Close() }()
	var m Manifest
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, fmt.Errorf("backup %s: decode %s: %w", id, key, err)
	}
	return &m, nil
}

func writeManifest(ctx context.Context, s Store, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return s.Put(ctx, backupPrefix(m.ID)+manifestName, bytes.NewReader(data), int64(len(data)), nil)
}

// Delete removes one backup (complete or not); the WAL stays (see Retain).
func Delete(ctx context.Context, s Store, id string) error {
	if id == "" || strings.Contains(id, "/") {
		return fmt.Errorf("delete backup %q: not a backup id", id)
	}
	objs, err := s.List(ctx, backupPrefix(id))
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		return fmt.Errorf("delete backup %s: %w", id, ErrNotFound)
	}
	// The manifest goes first so that a delete cut off midway leaves an
	// incomplete backup, never a complete-looking one with missing parts.
	keys := []string{backupPrefix(id) + manifestName}
	for _, o := range objs {
		if o.Key != keys[0] {
			keys = append(keys, o.Key)
		}
	}
	return s.Delete(ctx, keys...)
}

// ParseLSN reads a PostgreSQL LSN written as "X/Y" (hex).
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("lsn %q: want X/Y", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("lsn %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("lsn %q: %w", s, err)
	}
	return h<<32 | l, nil
}

// Target is where a restore stops replaying WAL. The zero Target replays all
// archived WAL.
type Target struct {
	Time      time.Time
	LSN       string
	Immediate bool
}

// ErrNoBackup says no complete backup fits the request.
var ErrNoBackup = errors.New("no suitable backup")

// SelectBackup picks the backup to restore: the one named id, else the newest
// complete backup that finished before the target (a backup must be
// consistent before the point it is recovered to).
func SelectBackup(backups []Manifest, id string, t Target) (*Manifest, error) {
	if id != "" {
		for i := range backups {
			if backups[i].ID == id {
				return &backups[i], nil
			}
		}
		return nil, fmt.Errorf("backup %s: %w (complete backups: %d)", id, ErrNoBackup, len(backups))
	}
	var target uint64
	if t.LSN != "" {
		var err error
		if target, err = ParseLSN(t.LSN); err != nil {
			return nil, err
		}
	}
	for i := len(backups) - 1; i >= 0; i-- {
		b := &backups[i]
		switch {
		case !t.Time.IsZero() && !b.StopTime.Before(t.Time):
			continue
		case t.LSN != "":
			stop, err := ParseLSN(b.StopLSN)
			if err != nil || stop > target {
				continue
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: none of %d complete backups ended before the target", ErrNoBackup, len(backups))
}
