package backup

import (
	"archive/tar"
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// The watcher must find the backup's LSNs however the stream is chunked,
// including when a big file and backup_manifest's long file list straddle
// writes.
func TestTarWatcherFindsBackupInfoInAnyChunking(t *testing.T) {
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(data)
	}
	add("backup_label", []byte("START WAL LOCATION: 0/9000028 (file 000000020000000000000009)\nCHECKPOINT LOCATION: 0/9000060\nSTART TIMELINE: 2\n"))
	add("PG_VERSION", []byte("15\n"))
	add("base/1/1259", bytes.Repeat([]byte{7}, 3*8192+5))
	files := strings.Repeat(`{ "Path": "base/1/1259", "Size": 8192, "Checksum-Algorithm": "CRC32C", "Checksum": "deadbeef" },`+"\n", 20000)
	add("backup_manifest", []byte(`{ "PostgreSQL-Backup-Manifest-Version": 1,
"Files": [`+files+`{}],
"WAL-Ranges": [
{ "Timeline": 2, "Start-LSN": "0/9000028", "End-LSN": "0/9000100" }
],
"Manifest-Checksum": "abc"}`))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := tarball.Bytes()
	for _, seed := range []uint64{1, 2, 3} {
		w := newTarWatcher()
		r := rand.New(rand.NewPCG(seed, seed))
		for p := data; len(p) > 0; {
			n := min(1+r.IntN(70000), len(p))
			_, _ = w.Write(p[:n])
			p = p[n:]
		}
		got := w.info()
		want := tarInfo{startLSN: "0/9000028", stopLSN: "0/9000100", startWAL: "000000020000000000000009", pgVersion: "15", timeline: 2}
		if got != want {
			t.Fatalf("seed %d: got %+v, want %+v", seed, got, want)
		}
	}
}
