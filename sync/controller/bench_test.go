package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
	"homeostat.dev/homeostat/sync/source"
)

// benchAppFiles is a repository of n Apps in 20 namespaces; app 7 has tag v.
func benchAppFiles(prefix string, n int, v string) map[string]string {
	files := map[string]string{}
	for i := range n {
		tag := "v1"
		if i == 7 {
			tag = v
		}
		files[fmt.Sprintf("apps/app-%04d.yaml", i)] = fmt.Sprintf(`apiVersion: homeostat.dev/v1alpha1
kind: App
metadata:
  name: app-%04d
  namespace: %steam-%d
spec:
  image: registry.example.com/app-%04d:%s
  port: 8080
  replicas: 2
  env:
    LOG_LEVEL: info
`, i, prefix, i%20, i, tag)
	}
	return files
}

// BenchmarkRunnerSync1000Apps is the loop's view of the repository of
// sync's BenchmarkSync1000Apps: from a commit in a real git repository to
// everything applied and a Snapshot written (fetch, render, apply, prune,
// snapshot; wait off, as no Deployment becomes ready without nodes), then
// an interval sync with nothing to do, then a commit changing one App.
// Services get real ClusterIPs from the test API server's /16 range.
func BenchmarkRunnerSync1000Apps(b *testing.B) { benchRunner(b, 1000) }

// BenchmarkRunnerSync10000Apps is the same at 30,000 objects: the
// controller's heap with its watch caches, the interval sync with nothing
// to do, and the Sync status and Snapshot as etcd stores them.
func BenchmarkRunnerSync10000Apps(b *testing.B) { benchRunner(b, 10000) }

func benchRunner(b *testing.B, apps int) {
	ctx := context.Background()
	for iter := 0; b.Loop(); iter++ {
		prefix := fmt.Sprintf("r%d-%d-", apps, iter)
		for i := range 20 {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%steam-%d", prefix, i)}}
			if err := env.Client.Create(ctx, ns); err != nil {
				b.Fatal(err)
			}
		}
		w := &writeCounter{}
		cfg := rest.CopyConfig(env.Config)
		cfg.Wrap(w.wrap)
		eng, err := hsync.New(cfg, hsync.Options{Watch: true}) // as the controller runs it
		if err == nil {
			defer eng.Close()
		}
		if err != nil {
			b.Fatal(err)
		}
		c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
		if err != nil {
			b.Fatal(err)
		}
		repo := newGitRepo(b, filepath.Join(b.TempDir(), "repo.git"))
		repo.commit("apps", benchAppFiles(prefix, apps, "v1"))
		runner := &Runner{Client: c, Engine: eng,
			Source: GitSource{Fetcher: &source.Fetcher{CacheDir: b.TempDir()}, Client: c}}
		s := &v1alpha1.Sync{ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: prefix + "team-0"},
			Spec: v1alpha1.SyncSpec{URL: repo.url(), Path: "./", Wait: new(false),
				Timeout: &metav1.Duration{Duration: 20 * time.Minute}}}
		if err := c.Create(ctx, s); err != nil {
			b.Fatal(err)
		}
		sync := func(trigger string) (Outcome, time.Duration) {
			start := time.Now()
			o := runner.Sync(ctx, s, trigger)
			d := time.Since(start)
			if o.Err != nil {
				b.Fatalf("%s sync: %v", trigger, o.Err)
			}
			base := s.DeepCopy()
			ApplyStatus(s, o)
			if apiequality.Semantic.DeepEqual(base.Status, s.Status) {
				return o, d // as the Reconciler does: no status change, no patch
			}
			if err := c.Status().Patch(ctx, s, client.MergeFrom(base)); err != nil {
				b.Fatal(err)
			}
			return o, d
		}
		first, firstD := sync(TriggerInterval)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)

		w.reset()
		all := w.all.Load()
		noop, noopD := sync(TriggerInterval)
		noopRequests := w.all.Load() - all
		noopWrites := 0
		for _, p := range w.paths {
			if p != "PATCH /apis/homeostat.dev/v1alpha1/namespaces/"+s.Namespace+"/syncs/bench/status" {
				noopWrites++
			}
		}
		if noop.Changes.Changed() || noop.Snapshot != "" {
			b.Fatalf("no-op sync did something: %s", noop.Changes.Summary())
		}

		repo.commit("bump app-0007", benchAppFiles(prefix, apps, "v2"))
		w.reset()
		one, oneD := sync(TriggerInterval)
		objectWrites := 0
		for _, p := range w.paths {
			if !strings.Contains(p, "/snapshots") && !strings.Contains(p, "/syncs/") {
				objectWrites++
			}
		}

		b.ReportMetric(float64(first.Changes.Count(hsync.Created)), "objects")
		b.ReportMetric(firstD.Seconds(), "first-s")
		b.ReportMetric(float64(first.Timings.FetchMillis), "first-fetch-ms")
		b.ReportMetric(float64(first.Timings.RenderMillis), "first-render-ms")
		b.ReportMetric(float64(first.Timings.ApplyMillis), "first-apply-ms")
		b.ReportMetric(float64(noopD.Milliseconds()), "noop-ms")
		b.ReportMetric(float64(noopWrites), "noop-writes")
		b.ReportMetric(float64(noopRequests), "noop-requests")
		b.ReportMetric(float64(oneD.Milliseconds()), "one-app-ms")
		b.ReportMetric(float64(objectWrites), "one-app-object-writes")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		var snap v1alpha1.Snapshot
		if err := c.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: first.Snapshot}, &snap); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(snap.Status.Objects))/1024, "snapshot-objects-KiB")
		b.ReportMetric(float64(jsonSize(b, &snap))/1024, "snapshot-KiB")
		var stored v1alpha1.Sync
		if err := c.Get(ctx, client.ObjectKeyFromObject(s), &stored); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(jsonSize(b, &stored))/1024, "sync-KiB")
		b.Logf("no-op timings %+v", noop.Timings)
		b.Logf("one-app commit: timings %+v\n%s", one.Timings, one.Changes.String())
	}
}

// jsonSize is how large an object is as the API server stores it (JSON).
func jsonSize(b *testing.B, o any) int {
	b.Helper()
	body, err := json.Marshal(o)
	if err != nil {
		b.Fatal(err)
	}
	return len(body)
}
