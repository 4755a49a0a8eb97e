package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/internal/testenv"
	hsync "homeostat.dev/homeostat/sync"
)

// A `homeostat sync --once` SIGKILLed at several points of a 500-object
// sync, with a removal committed while it was down, leaves no orphan once
// it runs again: every object it ever applied was in the inventory before
// it was written, so the next sync prunes what left git.
func TestSyncKilledMidApplyLeavesNoOrphans(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	repo := newCLIRepo(t)
	cache := t.TempDir()
	const total, removed = 500, 200
	for _, killAt := range []int{60, 250, 440} {
		t.Run(fmt.Sprint("killed at ", killAt), func(t *testing.T) {
			name := fmt.Sprint("crash-", killAt)
			files := map[string]string{}
			for i := range total {
				files[fmt.Sprintf("%s/c%03d.yaml", name, i)] = cm(fmt.Sprintf("c%03d", i), "1")
			}
			repo.write(files)
			repo.commit("500 objects for " + name)
			args := []string{"sync", "--repo", "file://" + repo.dir, "--path", name, "--name", name, "-n", name,
				"--wait=false", "--once", "--cache-dir", cache, "--kubeconfig", env.Kubeconfig}
			got := killWhen(t, env, name, killAt, args)
			t.Logf("killed with %d of %d objects applied", got, total)

			gone := map[string]string{}
			for i := range removed {
				gone[fmt.Sprintf("%s/c%03d.yaml", name, i)] = ""
			}
			repo.write(gone)
			repo.commit("remove 200 of " + name)
			if out, errOut, code := homeostat(t, args...); code != 0 {
				t.Fatalf("sync after the kill: exit %d\n%s\n%s", code, out, errOut)
			}
			live := labelled(t, env, name)
			if len(live) != total-removed {
				t.Fatalf("want %d objects left, got %d", total-removed, len(live))
			}
			for n := range live {
				var i int
				if _, err := fmt.Sscanf(n, "c%03d", &i); err != nil || i < removed {
					t.Fatalf("orphan %s survived the removal", n)
				}
			}
		})
	}
}

// killWhen runs the command and SIGKILLs it once at least n objects carry
// the Sync's labels; it returns how many did.
func killWhen(t *testing.T, env *testenv.Env, ns string, n int, args []string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainAsHomeostat$")
	encoded, _ := json.Marshal(args)
	cmd.Env = append(os.Environ(), cliArgsEnv+"="+string(encoded))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("the sync ended (%v) before %d objects were applied", err, n)
		default:
		}
		if got := len(labelled(t, env, ns)); got >= n {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			if err := <-exited; err == nil {
				t.Fatal("the sync exited cleanly although it was killed")
			}
			return len(labelled(t, env, ns))
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	t.Fatalf("fewer than %d objects applied in 3 minutes", n)
	return 0
}

// labelled lists the names of the ConfigMaps carrying Sync ns/ns's labels.
func labelled(t *testing.T, env *testenv.Env, ns string) map[string]bool {
	t.Helper()
	var l metav1.PartialObjectMetadataList
	l.APIVersion, l.Kind = "v1", "ConfigMapList"
	err := env.Client.List(context.Background(), &l, client.InNamespace(ns),
		client.MatchingLabels{hsync.LabelSync: ns, hsync.LabelSyncNamespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, o := range l.Items {
		out[o.Name] = true
	}
	return out
}
