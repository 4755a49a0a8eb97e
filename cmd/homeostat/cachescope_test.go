package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// startManager runs the controller's manager (Sync, operators) in-process
// with the given options until the returned stop is called.
func startManager(t testing.TB, env *testenv.Env, o ctrl.Options) (ctrl.Manager, func()) {
	t.Helper()
	o.Scheme = syncScheme()
	o.Metrics = metricsserver.Options{BindAddress: "0"}
	o.Controller.SkipNameValidation = ptr.To(true) // a benchmark starts the same controllers twice in one process
	mgr, err := ctrl.NewManager(env.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := setupSync(mgr, controllerFlags{cacheDir: t.TempDir(), concurrency: 1}); err != nil {
		t.Fatal(err)
	}
	for _, setup := range controllerSetups {
		if err := setup(mgr); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("manager cache did not sync")
	}
	return mgr, func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func namespace(t testing.TB, c client.Client, name string) {
	t.Helper()
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

func noisePod(ns, name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "registry.example.com/noise:1"}}},
	}
}

// TestScopedCacheHoldsOnlyHomeostatsObjects proves the controller's cache is
// scoped and that the operators still work through it: an unrelated Pod is
// not cached while homeostat's own is, and a Postgres stalled on a missing
// S3 secret wakes up when the secret appears (the metadata-only watch) and
// reads it straight from the API server. BenchmarkControllerMemory shows
// what the scope saves.
func TestScopedCacheHoldsOnlyHomeostatsObjects(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()
	namespace(t, env.Client, "noise")
	namespace(t, env.Client, "shop")
	own := map[string]string{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}
	for _, p := range []*corev1.Pod{noisePod("noise", "unrelated", nil), noisePod("shop", "ours", own)} {
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	mgr, stop := startManager(t, env, scopeCache(ctrl.Options{}))
	defer stop()

	var pods corev1.PodList
	eventually(t, "homeostat's pod in the cache", func() bool {
		return mgr.GetCache().List(ctx, &pods) == nil && len(pods.Items) == 1
	})
	if pods.Items[0].Name != "ours" {
		t.Fatalf("cache holds pod %s/%s, want only shop/ours", pods.Items[0].Namespace, pods.Items[0].Name)
	}
	if len(pods.Items[0].ManagedFields) != 0 {
		t.Error("cached pod kept its managed fields")
	}

	pg := &v1alpha1.Postgres{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"},
		Spec: v1alpha1.PostgresSpec{
			Storage: v1alpha1.Storage{Size: "1Gi"},
			Backup:  &v1alpha1.PostgresBackup{S3: v1alpha1.S3Store{Endpoint: "127.0.0.1:9", Bucket: "b", SecretRef: v1alpha1.LocalObjectReference{Name: "s3-creds"}}},
		},
	}
	if err := env.Client.Create(ctx, pg); err != nil {
		t.Fatal(err)
	}
	stalled := func() *metav1.Condition {
		var got v1alpha1.Postgres
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pg), &got); err != nil {
			return nil
		}
		return apimeta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionStalled)
	}
	eventually(t, "Postgres stalled on its missing S3 secret", func() bool {
		c := stalled()
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == "SecretNotFound"
	})
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "s3-creds"},
		StringData: map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key"}}
	if err := env.Client.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new secret to wake the Postgres up", func() bool {
		c := stalled()
		return c == nil || c.Status != metav1.ConditionTrue
	})

	// The instances' Role is cached (an unrelated one is not), and a hand
	// edit that also takes it out of the cache's scope is put back.
	unrelated := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "noise", Name: "unrelated"}}
	if err := env.Client.Create(ctx, unrelated); err != nil {
		t.Fatal(err)
	}
	var roles rbacv1.RoleList
	eventually(t, "the instances' Role, alone, in the cache", func() bool {
		return mgr.GetCache().List(ctx, &roles) == nil && len(roles.Items) == 1 && roles.Items[0].Name == "db"
	})
	role := roles.Items[0].DeepCopy()
	role.Labels, role.Rules = nil, nil
	if err := env.Client.Update(ctx, role); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the edited Role put back", func() bool {
		var got rbacv1.Role
		return env.Client.Get(ctx, client.ObjectKeyFromObject(role), &got) == nil && len(got.Rules) > 0 &&
			got.Labels[v1alpha1.LabelManagedBy] == v1alpha1.ManagedByValue
	})
}

// BenchmarkControllerMemory measures what the controller's cache costs on a
// cluster that holds 5,000 unrelated Pods and 5,000 unrelated Secrets (4 KiB
// each): the heap the manager holds once its caches have synced, with
// controller-runtime's default cache ("default", what homeostat did before
// the cache was scoped) and with scopeCache ("scoped"). Each mode runs in a
// process of its own (TestControllerHeapProbe), so that neither inherits the
// other's garbage.
func BenchmarkControllerMemory(b *testing.B) {
	env, err := testenv.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	namespace(b, env.Client, "noise")
	fillNoise(b, env.Client, 5000)
	for _, mode := range []string{"default", "scoped"} {
		b.Run(mode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				cmd := exec.Command(os.Args[0], "-test.run=^TestControllerHeapProbe$", "-test.v")
				cmd.Env = append(os.Environ(), "HOMEOSTAT_HEAP_PROBE="+mode, "KUBECONFIG="+env.Kubeconfig)
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("%s probe: %v\n%s", mode, err, out)
				}
				m := regexp.MustCompile(`heap-bytes=(\d+)`).FindSubmatch(out)
				if m == nil {
					b.Fatalf("%s probe printed no heap:\n%s", mode, out)
				}
				heap, _ := strconv.ParseFloat(string(m[1]), 64)
				b.ReportMetric(heap/(1<<20), "heap-MB")
			}
		})
	}
}

// TestControllerHeapProbe is BenchmarkControllerMemory's child process: it
// starts the manager in the mode it is told, lets the caches sync and
// settle, and prints the heap it then holds beyond what it held before.
func TestControllerHeapProbe(t *testing.T) {
	mode := os.Getenv("HOMEOSTAT_HEAP_PROBE")
	if mode == "" {
		t.Skip("run by BenchmarkControllerMemory")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	o := ctrl.Options{}
	if mode == "scoped" {
		o = scopeCache(o)
	}
	before := heapAfterGC()
	_, stop := startManager(t, &testenv.Env{Config: cfg}, o)
	time.Sleep(5 * time.Second) // let the informers' lists settle
	after := heapAfterGC()
	stop()
	fmt.Printf("heap-bytes=%d\n", after-before)
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// fillNoise creates n Pods and n Secrets that are not homeostat's.
func fillNoise(b *testing.B, c client.Client, n int) {
	b.Helper()
	ctx := context.Background()
	data := strings.Repeat("x", 4096)
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				name := fmt.Sprintf("noise-%05d", i)
				err := c.Create(ctx, noisePod("noise", name, map[string]string{"app": "noise"}))
				if err == nil {
					err = c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "noise", Name: name},
						StringData: map[string]string{"token": data}})
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}
