package instance_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"homeostat.dev/homeostat/operators/instance"
)

// `instance run` keeps a measurement of its data volume beside the data
// directory (what the operator reads through the server and puts in the
// Postgres status): the data directory's size as du counts it, and the
// volume's free space as df does.
func TestInstanceRunReportsItsDataVolume(t *testing.T) {
	n := newNode(t, "pgdata")
	homeostatOut(t, n.initArgs()...)
	r := n.run(t)
	var running instance.DiskUsage
	waitFor(t, 30*time.Second, "a disk usage file beside "+n.pgdata, func() bool {
		b, err := os.ReadFile(instance.DiskUsageFile(n.pgdata))
		return err == nil && json.Unmarshal(b, &running) == nil
	})
	if time.Since(running.MeasuredAt) > time.Minute || running.VolumeBytes <= 0 {
		t.Errorf("measurement of a running instance: %+v", running)
	}
	r.stop(t)

	// Stopped, the directory holds still: the walk must agree with du to
	// the byte, and with df on the space left (give or take what other
	// processes write meanwhile).
	got, err := instance.MeasureDisk(n.pgdata)
	if err != nil {
		t.Fatal(err)
	}
	du := commandBytes(t, "du", "-s", "-B1", n.pgdata)
	if got.DataBytes != du {
		t.Errorf("data directory: %d bytes, du says %d", got.DataBytes, du)
	}
	if running.DataBytes < du/2 || running.DataBytes > du*2 {
		t.Errorf("while running: %d bytes; stopped, du says %d", running.DataBytes, du)
	}
	df := commandBytes(t, "df", "-B1", "--output=avail", n.pgdata)
	if diff := got.VolumeFreeBytes - df; diff > 256<<20 || diff < -256<<20 {
		t.Errorf("volume free: %d bytes, df says %d", got.VolumeFreeBytes, df)
	}
}

// commandBytes runs a du- or df-like command and returns the last number
// it prints.
func commandBytes(t *testing.T, name string, args ...string) int64 {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	fields := strings.Fields(string(out))
	for i := len(fields) - 1; i >= 0; i-- {
		if v, err := strconv.ParseInt(fields[i], 10, 64); err == nil {
			return v
		}
	}
	t.Fatalf("%s printed no number: %q", name, out)
	return 0
}
