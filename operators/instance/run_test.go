package instance_test

import (
	"syscall"
	"testing"
	"time"

	"homeostat.dev/homeostat/backup/pgbin"
)

// SIGTERM stops postgres cleanly and run exits 0; when postgres dies on its
// own, run exits with its code so the pod restarts.
func TestRunShutsDownOnSIGTERMAndExitsWhenPostgresDies(t *testing.T) {
	n := newNode(t, "data")
	homeostatOut(t, n.initArgs()...)

	r := n.run(t)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("after SIGTERM instance run exited %d, want 0:\n%s", code, r.out.String())
	}
	if _, err := pgbin.ReadPostmaster(n.pgdata); err == nil {
		t.Fatal("postmaster.pid remains after a clean shutdown")
	}

	r = n.run(t)
	pm, err := pgbin.ReadPostmaster(n.pgdata)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pm.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 20*time.Second); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("after postgres was killed instance run exited %d, want %d", code, 128+int(syscall.SIGKILL))
	}
}
