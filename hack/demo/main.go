// Command demo is `make demo`: homeostat end to end on one machine with no
// cluster. It starts a local control plane (the etcd and kube-apiserver the
// tests use), MinIO on 127.0.0.1:9000, and a stand-in for a node (the
// internal/kubelet harness, running homeostat's pods as local processes with
// the machine's PostgreSQL), turns examples/ into a git repository, runs the
// homeostat controller against it, shows what was applied, waits for the
// shop's Postgres to run with a primary and two replicas, takes a backup to
// MinIO, switches the primary over with `homeostat pg switchover`, commits a
// change (one app scaled, one removed), and shows the sync
// that follows and the snapshot diff. Everything it started stops when it
// ends or is interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/internal/s3test"
	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

func main() {
	stay := flag.Bool("stay", term.IsTerminal(int(os.Stdin.Fd())) && os.Getenv("CI") == "",
		"keep the control plane running after the tour, until Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *stay); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

// demo holds what the tour started, so that one deferred cleanup stops it.
type demo struct {
	root, dir, kubeconfig, repo string
	homeostat, kubectl          string
	env                         *testenv.Env
	c                           client.Client
	s3                          *s3test.Server
}

func run(ctx context.Context, stay bool) error {
	d := &demo{}
	var err error
	if d.root, err = testenv.RepoRoot(); err != nil {
		return err
	}
	d.dir = filepath.Join(d.root, ".demo")
	d.homeostat = filepath.Join(d.root, "bin", "homeostat")
	if d.kubectl, err = testenv.Binary("kubectl"); err != nil {
		return err
	}
	if err := os.RemoveAll(d.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}

	step("Starting a local control plane (etcd + kube-apiserver on 127.0.0.1)")
	if d.env, err = testenv.Start(); err != nil {
		return err
	}
	defer func() {
		step("Stopping the control plane")
		_ = d.env.Stop()
	}()
	d.c = d.env.Client
	d.kubeconfig = filepath.Join(d.dir, "kubeconfig")
	if err := copyFile(d.env.Kubeconfig, d.kubeconfig); err != nil {
		return err
	}
	fmt.Printf("   kubeconfig: %s\n", d.kubeconfig)

	step("Starting the demo's stand-in for a node: internal/kubelet runs homeostat's pods as local processes (real PostgreSQL), and MinIO")
	stopNode, err := d.startNode(ctx)
	if err != nil {
		return err
	}
	defer stopNode()
	if err := d.createS3Secret(ctx); err != nil {
		return err
	}

	step("Making a git repository from examples/")
	d.repo = filepath.Join(d.dir, "repo")
	if err := d.initRepo(); err != nil {
		return err
	}

	step("Starting the homeostat controller")
	stopController, err := d.startController(ctx)
	if err != nil {
		return err
	}
	defer stopController()

	step("Creating the Sync that follows the repository")
	if err := d.createSync(ctx); err != nil {
		return err
	}
	first, err := d.waitSnapshot(ctx, "")
	if err != nil {
		return err
	}
	d.show("kubectl get syncs,snapshots -n homeostat-system")
	d.show("kubectl get apps,postgres,pipelines -A")
	d.show("kubectl get deployments,services,ingresses,hpa -A -l app.kubernetes.io/managed-by=homeostat")

	step("The Postgres operator bootstraps shopdb on the stand-in node")
	if err := d.waitPostgres(ctx); err != nil {
		return err
	}
	d.show("kubectl get pg,pods -n shop")
	step("A base backup of shopdb to MinIO")
	if err := d.backupNow(ctx); err != nil {
		return err
	}
	d.show("kubectl get backups -n shop")
	d.show("homeostat pg status shopdb -n shop")

	step("A switchover: the primary moves to a replica, on request")
	if err := d.switchover(ctx); err != nil {
		return err
	}
	d.show("kubectl get pg,pods -n shop -L homeostat.dev/role")

	step("Committing a change: shop scaled from 2 to 3 replicas, the docs app removed")
	if err := d.commitChange(); err != nil {
		return err
	}
	if err := d.syncNow(ctx); err != nil {
		return err
	}
	second, err := d.waitSnapshot(ctx, first)
	if err != nil {
		return err
	}
	d.show("homeostat snapshots list -n homeostat-system")
	d.show(fmt.Sprintf("homeostat snapshots diff -n homeostat-system %s %s", first, second))
	d.show("kubectl get apps -A")

	fmt.Printf("\nThe tour is done. Look around with:\n\n")
	fmt.Printf("  export KUBECONFIG=%s\n", d.kubeconfig)
	fmt.Printf("  %s get apps,pg,snapshots -A\n", d.kubectl)
	fmt.Printf("  %s snapshots show -n homeostat-system %s\n", d.homeostat, second)
	fmt.Printf("  (the repository is %s: commit to it and watch the next sync)\n", d.repo)
	if stay {
		fmt.Printf("\nMove the primary again and watch it move: in one terminal (after the export above)\n\n")
		fmt.Printf("  %s get pg,pods -n shop -L homeostat.dev/role -w\n", d.kubectl)
		fmt.Printf("\nand in another (the same export first)\n\n")
		fmt.Printf("  %s pg switchover shopdb -n shop\n", d.homeostat)
		fmt.Printf("  %s pg status shopdb -n shop\n", d.homeostat)
		fmt.Printf("\nPress Ctrl-C to stop everything.\n")
		<-ctx.Done()
	}
	return nil
}

func step(msg string) { fmt.Printf("\n==> %s\n", msg) }

// show prints a command as a user would type it and runs it, so every
// command the tour suggests is proven to work.
func (d *demo) show(cmdline string) {
	fmt.Printf("\n$ %s\n", cmdline)
	args := strings.Fields(cmdline)
	bin := map[string]string{"kubectl": d.kubectl, "homeostat": d.homeostat}[args[0]]
	cmd := exec.Command(bin, args[1:]...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+d.kubeconfig)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Printf("(%s failed: %v)\n", args[0], err)
	}
}

func (d *demo) git(args ...string) error {
	cmd := exec.Command("git", append([]string{"-C", d.repo, "-c", "user.name=Demo", "-c", "user.email=demo@homeostat.dev",
		"-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (d *demo) initRepo() error {
	if err := os.CopyFS(d.repo, os.DirFS(filepath.Join(d.root, "examples"))); err != nil {
		return fmt.Errorf("copy examples/: %w", err)
	}
	// examples/ holds its own Go tests beside the manifests; a user's
	// repository would not.
	tests, _ := filepath.Glob(filepath.Join(d.repo, "*.go"))
	for _, f := range tests {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	if err := d.git("init", "-q", "-b", "main"); err != nil {
		return err
	}
	if err := d.git("add", "-A"); err != nil {
		return err
	}
	return d.git("commit", "-q", "-m", "Infrastructure: shop, web, status, CI")
}

func (d *demo) commitChange() error {
	shop := filepath.Join(d.repo, "shop", "app.yaml")
	if err := editFile(shop, func(s string) string { return strings.Replace(s, "replicas: 2", "replicas: 3", 1) }); err != nil {
		return err
	}
	web := filepath.Join(d.repo, "web", "api.yaml")
	if err := editFile(web, dropDocument("name: docs")); err != nil {
		return err
	}
	if err := d.git("commit", "-q", "-am", "Scale shop to 3 replicas; retire docs"); err != nil {
		return err
	}
	fmt.Printf("   committed to %s\n", d.repo)
	return nil
}

// dropDocument removes the YAML document containing marker.
func dropDocument(marker string) func(string) string {
	return func(s string) string {
		docs := strings.Split(s, "\n---\n")
		kept := docs[:0]
		for _, doc := range docs {
			if !strings.Contains(doc, marker) {
				kept = append(kept, doc)
			}
		}
		return strings.Join(kept, "\n---\n")
	}
}

func editFile(path string, edit func(string) string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	after := edit(string(data))
	if after == string(data) {
		return fmt.Errorf("the demo's edit of %s changed nothing: has examples/ changed?", path)
	}
	return os.WriteFile(path, []byte(after), 0o644)
}

func (d *demo) startController(ctx context.Context) (func(), error) {
	logPath := filepath.Join(d.dir, "controller.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, d.homeostat, "controller",
		"--kubeconfig", d.kubeconfig,
		"--metrics-addr", "0",
		"--health-addr", freeAddr(),
		"--webhook-addr", "",
		"--cache-dir", filepath.Join(d.dir, "cache"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The demo runs the Postgres operator itself (node.go).
	cmd.Env = append(os.Environ(), "HOMEOSTAT_POSTGRES_OPERATOR=off", "HOMEOSTAT_IMAGE="+demoImage)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s controller: %w", d.homeostat, err)
	}
	fmt.Printf("   pid %d, logs in %s\n", cmd.Process.Pid, logPath)
	return func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logFile.Close()
	}, nil
}

func (d *demo) createSync(ctx context.Context) error {
	s := &v1alpha1.Sync{
		ObjectMeta: metav1.ObjectMeta{Name: "examples", Namespace: "homeostat-system"},
		Spec: v1alpha1.SyncSpec{
			URL:      "file://" + d.repo,
			Ref:      &v1alpha1.GitRef{Branch: "main"},
			Interval: &metav1.Duration{Duration: 30 * time.Second},
			// The local control plane has no nodes, so Deployments never
			// become ready: do not wait for health.
			Wait: ptr.To(false),
		},
	}
	if err := d.c.Create(ctx, namespace("homeostat-system")); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	if err := d.c.Create(ctx, s); err != nil {
		return err
	}
	fmt.Printf("   Sync homeostat-system/examples -> %s (branch main, every 30s)\n", s.Spec.URL)
	return nil
}

// syncNow asks for a sync at once, as a push webhook would.
func (d *demo) syncNow(ctx context.Context) error {
	var s v1alpha1.Sync
	if err := d.c.Get(ctx, client.ObjectKey{Namespace: "homeostat-system", Name: "examples"}, &s); err != nil {
		return err
	}
	patch := client.MergeFrom(s.DeepCopy())
	metav1.SetMetaDataAnnotation(&s.ObjectMeta, "homeostat.dev/sync-at", time.Now().Format(time.RFC3339Nano))
	return d.c.Patch(ctx, &s, patch)
}

// waitSnapshot waits until the Sync records a snapshot other than after, and
// returns its name; a failed sync ends the demo with its error.
func (d *demo) waitSnapshot(ctx context.Context, after string) (string, error) {
	fmt.Printf("   waiting for the sync")
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		var s v1alpha1.Sync
		if err := d.c.Get(ctx, client.ObjectKey{Namespace: "homeostat-system", Name: "examples"}, &s); err != nil {
			return "", err
		}
		if name := s.Status.LastSnapshot; name != "" && name != after {
			fmt.Println(" done")
			ready := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady)
			if ready != nil && ready.Status != metav1.ConditionTrue {
				return "", fmt.Errorf("sync failed: %s: %s", ready.Reason, ready.Message)
			}
			return name, nil
		}
		fmt.Print(".")
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return "", fmt.Errorf("no sync finished within 3 minutes; see %s", filepath.Join(d.dir, "controller.log"))
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		slog.Error("no free port", "err", err)
		os.Exit(1)
	}
	defer l.Close()
	return l.Addr().String()
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

func namespace(name string) client.Object {
	ns := &corev1.Namespace{}
	ns.Name = name
	return ns
}
