package backup

import "testing"

func TestSegmentNext(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
		want string
	}{
		{"000000010000000000000005", 16 << 20, "000000010000000000000006"},
		{"0000000200000000000000FF", 16 << 20, "000000020000000100000000"},
		{"000000010000000A00000003", 1 << 30, "000000010000000B00000000"},
		{"000000010000000A00000002", 1 << 30, "000000010000000A00000003"},
		{"000000010000000000000005", 3 << 20, ""}, // not a power of two: no guess
	} {
		seg, ok := parseSegment(tc.name)
		if !ok {
			t.Fatalf("%s: not parsed", tc.name)
		}
		next, ok := seg.next(tc.size)
		got := ""
		if ok {
			got = next.name()
		}
		if got != tc.want {
			t.Errorf("after %s (%d bytes): got %q, want %q", tc.name, tc.size, got, tc.want)
		}
	}
	if got := DefaultSpoolDir("/var/lib/pg/data"); got != "/var/lib/pg/.data.homeostat-wal-spool" {
		t.Errorf("spool dir: %s", got)
	}
}
