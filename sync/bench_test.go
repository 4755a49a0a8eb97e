package sync

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/render"
)

// benchTeams is how many namespaces the benchmark's Apps spread over.
const benchTeams = 20

// appsTree is a repository of n Apps, all at image tag version.
func appsTree(n int, version func(i int) string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i := range n {
		fsys[fmt.Sprintf("apps/app-%05d.yaml", i)] = &fstest.MapFile{Data: fmt.Appendf(nil, `apiVersion: homeostat.dev/v1alpha1
kind: App
metadata:
  name: app-%05d
  namespace: team-%d
spec:
  image: registry.example.com/app-%05d:%s
  port: 8080
  replicas: 2
  env:
    LOG_LEVEL: info
    FEATURE_FLAGS: "a,b,c"
`, i, i%benchTeams, i, version(i))}
	}
	return fsys
}

// renderApps renders a tree of apps Apps with namespaces prefixed, so each
// phase of the benchmark creates its objects afresh. Services get a
// ClusterIP from the test API server's /16 range.
func renderApps(b *testing.B, apps int, prefix string, version func(i int) string) []render.Object {
	b.Helper()
	objs, problems := render.Render(appsTree(apps, version))
	if len(problems) > 0 {
		b.Fatalf("render: %v", problems)
	}
	for _, o := range objs {
		if ns := o.Object.GetNamespace(); ns != "" {
			o.Object.SetNamespace(prefix + ns)
		}
		if o.Owner != nil {
			// Children may share one OwnerRef: set, not prefix.
			o.Owner.Namespace = o.Object.GetNamespace()
		}
	}
	return objs
}

func createNamespaces(b *testing.B, prefix string) {
	b.Helper()
	for i := range benchTeams {
		namespace(b, fmt.Sprintf("%steam-%d", prefix, i))
	}
}

// rawApply is the API server's own limit: one server-side apply PATCH per
// object, concurrently, nothing else.
func rawApply(ctx context.Context, b *testing.B, e *Engine, objs []render.Object, concurrency int) {
	b.Helper()
	rc := e.rest
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, o := range objs {
		g.Go(func() error {
			gvk := o.Object.GroupVersionKind()
			m, err := e.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				return err
			}
			body, err := json.Marshal(o.Object.Object)
			if err != nil {
				return err
			}
			return rc.Patch(types.ApplyPatchType).AbsPath(objectPath(m, o.Object.GetNamespace(), o.Object.GetName())).
				Param("fieldManager", "raw").Param("force", "true").Body(body).Do(gctx).Error()
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatalf("raw apply: %v", err)
	}
}

// kubectlApply runs `kubectl apply --server-side` on the same objects.
func kubectlApply(b *testing.B, objs []render.Object) time.Duration {
	b.Helper()
	kubectl, err := testenv.Binary("kubectl")
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(b.TempDir(), "rendered.yaml")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	for _, o := range objs {
		y, err := yaml.Marshal(o.Object.Object)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(f, "---\n%s", y)
	}
	f.Close()
	start := time.Now()
	out, err := exec.Command(kubectl, "--kubeconfig", env.Kubeconfig, "apply", "--server-side", "--field-manager", "kubectl-bench", "-f", file).CombinedOutput()
	if err != nil {
		b.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	return time.Since(start)
}

// BenchmarkSync1000Apps measures, in one run against the real API server, a
// first sync of 1,000 Apps (3,000 objects), a no-op sync (by the same
// Engine, and by a fresh one as `homeostat sync --once` is) and a commit
// that changes one App, next to raw concurrent apply PATCHes and `kubectl
// apply --server-side` of the same objects.
func BenchmarkSync1000Apps(b *testing.B) { benchSync(b, 1000, true) }

// BenchmarkSync10000Apps is the same for 10,000 Apps (30,000 objects, with
// 10,000 ClusterIP Services), without kubectl.
func BenchmarkSync10000Apps(b *testing.B) { benchSync(b, 10000, false) }

// benchStep prints a phase's start to stderr, so a run that does not
// finish shows how far it got.
func benchStep(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func benchSync(b *testing.B, apps int, withKubectl bool) {
	ctx := context.Background()
	v1 := func(int) string { return "v1" }
	for iter := 0; b.Loop(); iter++ {
		p := fmt.Sprintf("b%d-%d-", apps, iter)
		e, w := newEngine(b)
		// Raw PATCHes and first syncs each go into fresh namespaces, in an
		// order that gives neither an edge (see below).
		var rawCPU, syncCPU time.Duration
		rawRun := func(name string) time.Duration {
			objs := renderApps(b, apps, p+name+"-", v1)
			createNamespaces(b, p+name+"-")
			start, cpu := time.Now(), cpuTime()
			rawApply(ctx, b, e, objs, e.concurrency)
			rawCPU += cpuTime() - cpu
			return time.Since(start)
		}
		var renderTime time.Duration
		syncRun := func(name string) (Target, []render.Object, ChangeSet, time.Duration) {
			start := time.Now()
			desired := renderApps(b, apps, p+name+"-", v1)
			renderTime = time.Since(start)
			createNamespaces(b, p+name+"-")
			tg := Target{Name: "bench", Namespace: p + name + "-team-0", DefaultNamespace: p + name + "-team-0"}
			cpu := cpuTime()
			start = time.Now()
			cs, err := e.Apply(ctx, tg, desired, nil)
			d := time.Since(start)
			syncCPU += cpuTime() - cpu
			if err != nil || cs.Count(Created) != len(desired) {
				b.Fatalf("first sync: %v\n%s", err, cs.Summary())
			}
			return tg, desired, cs, d
		}
		// Order: sync, raw, raw, sync (positions balance out), with the no-op
		// and one-app measurements right after the first sync, while the
		// cluster holds only that sync's 3,000 objects (label-selected lists
		// scan every object of a kind, so other phases' objects would
		// inflate them), and kubectl last.
		ipBase := ipAddresses(ctx, b)
		w.reset()
		benchStep("first sync of %d apps", apps)
		tg, desired, cs, first1 := syncRun("sync1")
		firstWrites := w.n.Load()
		firstDryRuns := w.dry.Load()
		var err error
		var start time.Time

		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)

		// No-op, by the Engine that applied (the controller's case).
		benchStep("no-op sync")
		w.reset()
		start = time.Now()
		cs, err = e.Apply(ctx, tg, desired, cs.Inventory())
		noop := time.Since(start)
		if err != nil || cs.Changed() {
			b.Fatalf("no-op sync: %v\n%s", err, cs.Summary())
		}
		noopWrites := w.n.Load()

		// No-op by a fresh Engine (the CLI's case: nothing in memory).
		benchStep("fresh no-op sync")
		fresh, fw := newEngine(b)
		start = time.Now()
		cs, err = fresh.Apply(ctx, tg, desired, cs.Inventory())
		noopFresh := time.Since(start)
		if err != nil || cs.Changed() {
			b.Fatalf("fresh no-op sync: %v\n%s", err, cs.Summary())
		}
		noopFreshWrites := fw.n.Load()

		// No-op by a watching Engine (the controller's): its first pass
		// starts the watches, the next reads only them.
		benchStep("watching no-op sync")
		watching, ww := newEngineWith(b, Options{Watch: true})
		start = time.Now()
		if _, err := watching.Apply(ctx, tg, desired, cs.Inventory()); err != nil {
			b.Fatal(err)
		}
		restart, restartDryRuns := time.Since(start), ww.dry.Load()
		ww.reset()
		start = time.Now()
		cs, err = watching.Apply(ctx, tg, desired, cs.Inventory())
		noopWatch := time.Since(start)
		if err != nil || cs.Changed() {
			b.Fatalf("watching no-op sync: %v\n%s", err, cs.Summary())
		}
		noopWatchRequests := ww.all.Load()

		// A commit that changes one App.
		changed := renderApps(b, apps, p+"sync1-", func(i int) string {
			if i == 7 {
				return "v2"
			}
			return "v1"
		})
		benchStep("one-app commit")
		w.reset()
		start = time.Now()
		cs, err = e.Apply(ctx, tg, changed, cs.Inventory())
		oneApp := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		oneAppWrites := w.n.Load()

		if !withKubectl {
			// Each ClusterIP the API server allocates costs it a scan of
			// every address allocated so far (kube-apiserver 1.33+ counts
			// them for its metrics after each allocation), so 10,000 new
			// Services cost more the more exist: raw PATCHes start from the
			// count the first sync started from.
			benchStep("delete the first sync's Services")
			dropServices(ctx, b, p+"sync1-", ipBase)
		}
		benchStep("raw concurrent SSA")
		raw1 := rawRun("raw1")
		raw2, first2 := raw1, first1
		if withKubectl {
			// The small set runs each side twice; the large one once, as
			// four phases of 30,000 objects would take the test cluster
			// past what 2 cores hold in ten minutes.
			raw2 = rawRun("raw2")
			_, _, _, first2 = syncRun("sync2")
		}
		var kubectl time.Duration
		if withKubectl {
			kubectlObjs := renderApps(b, apps, p+"kubectl-", v1)
			createNamespaces(b, p+"kubectl-")
			kubectl = kubectlApply(b, kubectlObjs)
		}
		raw, first := (raw1+raw2)/2, (first1+first2)/2

		b.ReportMetric(float64(len(desired)), "objects")
		b.ReportMetric(raw.Seconds(), "raw-patch-s")
		if withKubectl {
			b.ReportMetric(kubectl.Seconds(), "kubectl-ssa-s")
		}
		b.ReportMetric(first.Seconds(), "first-sync-s")
		b.ReportMetric(first.Seconds()/raw.Seconds(), "first/raw")
		if withKubectl {
			b.ReportMetric(kubectl.Seconds()/first.Seconds(), "kubectl/first")
		}
		b.ReportMetric(float64(firstWrites), "first-writes")
		b.ReportMetric(float64(firstDryRuns), "first-dry-runs")
		runs := 1.0
		if withKubectl {
			runs = 2
		}
		b.ReportMetric(rawCPU.Seconds()/runs, "raw-client-cpu-s")
		b.ReportMetric(syncCPU.Seconds()/runs, "first-client-cpu-s")
		b.ReportMetric(float64(noop.Milliseconds()), "noop-ms")
		b.ReportMetric(float64(noopWrites), "noop-writes")
		b.ReportMetric(float64(noopFresh.Milliseconds()), "noop-fresh-ms")
		b.ReportMetric(float64(noopFreshWrites), "noop-fresh-writes")
		b.ReportMetric(float64(noopWatch.Milliseconds()), "noop-watch-ms")
		b.ReportMetric(float64(renderTime.Milliseconds()), "render-ms")
		b.ReportMetric(restart.Seconds(), "restart-noop-s")
		b.ReportMetric(float64(restartDryRuns), "restart-dry-runs")
		b.ReportMetric(float64(noopWatchRequests), "noop-watch-requests")
		b.ReportMetric(float64(oneApp.Milliseconds()), "one-app-ms")
		b.ReportMetric(float64(oneAppWrites), "one-app-writes")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		b.Logf("raw %s %s, first sync %s %s, kubectl %s; one-app change:\n%s", raw1, raw2, first1, first2, kubectl, cs.String())
		b.Logf("status size with this inventory: %d bytes", inventoryBytes(cs.Inventory()))
	}
}

// ipAddresses counts the ClusterIPs the API server has allocated.
func ipAddresses(ctx context.Context, b *testing.B) int {
	b.Helper()
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "IPAddressList"})
	if err := env.Client.List(ctx, list); err != nil {
		b.Fatal(err)
	}
	return len(list.Items)
}

// dropServices deletes the Services in a phase's namespaces and waits until
// the API server has released their ClusterIPs, down to want.
func dropServices(ctx context.Context, b *testing.B, prefix string, want int) {
	b.Helper()
	for i := range benchTeams {
		if err := env.Client.DeleteAllOf(ctx, &corev1.Service{}, client.InNamespace(fmt.Sprintf("%steam-%d", prefix, i))); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Minute)
	for n := ipAddresses(ctx, b); n > want; n = ipAddresses(ctx, b) {
		if time.Now().After(deadline) {
			b.Fatalf("%d ClusterIPs still allocated after deleting the Services, want %d", n, want)
		}
		time.Sleep(time.Second)
	}
}

// cpuTime is the CPU this process (the client side) has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// inventoryBytes is how large the inventory makes a Sync's status, as JSON.
func inventoryBytes(inv Inventory) int {
	list, compressed := EncodeInventory(inv)
	body, _ := json.Marshal(map[string]any{"inventory": list, "inventoryCompressed": compressed})
	return len(body)
}
