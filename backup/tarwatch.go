package backup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// tarWatcher follows a ustar stream as it is written (pg_basebackup's tar
// format: 512-byte headers, names under 100 bytes) and keeps only what the
// manifest needs: backup_label, PG_VERSION and the tail of backup_manifest.
// It never copies file contents it does not keep, so watching a 1 GiB stream
// costs next to nothing, unlike a full archive/tar reader.
type tarWatcher struct {
	header    [512]byte
	headerLen int
	// remaining bytes of the current member's data plus padding; keep says
	// whether to collect them, and dataLeft how many are data, not padding.
	remaining int64
	dataLeft  int64
	current   string
	collected map[string]*bytes.Buffer
	done      bool
	err       error
}

// tarWatchTail is how much of backup_manifest is kept: its WAL-Ranges are at
// the end, and the file list before them can be large.
const tarWatchTail = 256 << 10

func newTarWatcher() *tarWatcher {
	return &tarWatcher{collected: map[string]*bytes.Buffer{}}
}

func (w *tarWatcher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && !w.done && w.err == nil {
		if w.remaining > 0 {
			k := int64(len(p))
			if k > w.remaining {
				k = w.remaining
			}
			if data := min(k, w.dataLeft); data > 0 && w.current != "" {
				w.keep(p[:data])
			}
			w.dataLeft = max(w.dataLeft-k, 0)
			w.remaining -= k
			p = p[k:]
			continue
		}
		c := copy(w.header[w.headerLen:], p)
		w.headerLen += c
		p = p[c:]
		if w.headerLen == len(w.header) {
			w.headerLen = 0
			w.parseHeader()
		}
	}
	return n, nil
}

func (w *tarWatcher) keep(b []byte) {
	buf := w.collected[w.current]
	buf.Write(b)
	if buf.Len() > 2*tarWatchTail {
		tail := append([]byte(nil), buf.Bytes()[buf.Len()-tarWatchTail:]...)
		buf.Reset()
		buf.Write(tail)
	}
}

func (w *tarWatcher) parseHeader() {
	h := w.header[:]
	if bytes.Count(h, []byte{0}) == len(h) {
		// An all-zero block ends the archive.
		w.done = true
		return
	}
	name := string(bytes.TrimRight(h[0:100], "\x00"))
	if prefix := string(bytes.TrimRight(h[345:500], "\x00")); prefix != "" && string(h[257:262]) == "ustar" {
		name = prefix + "/" + name
	}
	size, err := tarSize(h[124:136])
	if err != nil {
		w.err = fmt.Errorf("tar header of %q: %w", name, err)
		return
	}
	w.dataLeft = size
	w.remaining = (size + 511) / 512 * 512
	w.current = ""
	switch name {
	case "backup_label", "PG_VERSION", "backup_manifest":
		w.current = name
		w.collected[name] = &bytes.Buffer{}
	}
}

// tarSize reads the size field: octal, or base-256 when the top bit is set.
func tarSize(field []byte) (int64, error) {
	if field[0]&0x80 != 0 {
		var n int64
		for i, b := range field {
			if i == 0 {
				b &= 0x7f
			}
			n = n<<8 | int64(b)
		}
		return n, nil
	}
	s := strings.TrimSpace(string(bytes.TrimRight(field, "\x00 ")))
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 8, 64)
}

var manifestWALRanges = regexp.MustCompile(`"WAL-Ranges"\s*:\s*(\[[^\]]*\])`)

// info extracts what the manifest needs once the stream has ended.
func (w *tarWatcher) info() tarInfo {
	var info tarInfo
	if w.err != nil {
		info.err = w.err
		return info
	}
	if b := w.collected["backup_label"]; b != nil {
		if m := labelStart.FindSubmatch(b.Bytes()); m != nil {
			info.startLSN, info.startWAL = string(m[1]), string(m[2])
		}
		if m := labelTimeline.FindSubmatch(b.Bytes()); m != nil {
			info.timeline, _ = strconv.Atoi(string(m[1]))
		}
	}
	if b := w.collected["PG_VERSION"]; b != nil {
		info.pgVersion = strings.TrimSpace(b.String())
	}
	if b := w.collected["backup_manifest"]; b != nil {
		if m := manifestWALRanges.FindSubmatch(b.Bytes()); m != nil {
			var ranges []struct {
				Timeline int    `json:"Timeline"`
				EndLSN   string `json:"End-LSN"`
			}
			if err := json.Unmarshal(m[1], &ranges); err == nil && len(ranges) > 0 {
				info.stopLSN = ranges[len(ranges)-1].EndLSN
				info.timeline = ranges[len(ranges)-1].Timeline
			}
		}
	}
	if info.startLSN == "" || info.stopLSN == "" {
		info.err = fmt.Errorf("no backup_label or WAL-Ranges in backup_manifest in the stream from pg_basebackup")
	}
	return info
}
