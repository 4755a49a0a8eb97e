package source

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	git "github.com/go-git/go-git/v5"
)

// appFiles is what one app of a typical GitOps repository looks like: the
// App itself, a ConfigMap and a kustomization.
func appFiles(i int, version string) map[string]string {
	name := fmt.Sprintf("app-%04d", i)
	return map[string]string{
		"apps/" + name + "/app.yaml": fmt.Sprintf(`apiVersion: homeostat.dev/v1alpha1
kind: App
metadata:
  name: %[1]s
  namespace: team-%[2]d
spec:
  image: registry.example.com/%[1]s:%[3]s
  port: 8080
  replicas: 2
  env:
    LOG_LEVEL: info
    FEATURE_FLAGS: "a,b,c"
  domains: [%[1]s.example.com]
  health: {path: /healthz}
`, name, i%20, version),
		"apps/" + name + "/config.yaml": fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: %[1]s-config
  namespace: team-%[2]d
data:
  settings.json: '{"name": "%[1]s", "workers": 4, "cache": "redis://cache:6379"}'
`, name, i%20),
		"apps/" + name + "/kustomization.yaml": "resources: [app.yaml, config.yaml]\n",
	}
}

// newAppsRepo is a repository with apps*3 files in one commit.
func newAppsRepo(b *testing.B, dir string, apps int) *testRepo {
	r := newTestRepo(b, dir)
	files := map[string]string{}
	for i := range apps {
		for p, c := range appFiles(i, "1.0.0") {
			files[p] = c
		}
	}
	r.commitAll("1,000 apps", files)
	return r
}

// commitAll is commit for many files: one index update instead of one per file.
func (r *testRepo) commitAll(msg string, files map[string]string) string {
	r.t.Helper()
	for p, c := range files {
		writeWork(r.t, r.work, p, c)
	}
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		r.t.Fatal(err)
	}
	return r.commit(msg, nil)
}

func benchURLs(b *testing.B, apps int) map[string]string {
	srv, _ := newServer(b)
	newAppsRepo(b, filepath.Join(srv.Root(), "apps.git"), apps)
	startHTTP(b, srv)
	return map[string]string{
		"file": "file://" + filepath.Join(srv.Root(), "apps.git"),
		"http": srv.HTTPAddress() + "/apps.git",
	}
}

// BenchmarkFetchUnchanged is the sync loop's common case: the branch has not
// moved since the last fetch. One ls-remote round trip, no objects, no checkout.
func BenchmarkFetchUnchanged(b *testing.B) {
	urls := benchURLs(b, 1000)
	for _, proto := range []string{"file", "http"} {
		b.Run(proto, func(b *testing.B) {
			f := &Fetcher{CacheDir: b.TempDir()}
			ctx := context.Background()
			first, err := f.Fetch(ctx, "ns/apps", urls[proto], Ref{}, Auth{})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				rev, err := f.Fetch(ctx, "ns/apps", urls[proto], Ref{}, Auth{})
				if err != nil || rev != first {
					b.Fatalf("%+v, %v", rev, err)
				}
			}
		})
	}
}

// BenchmarkFetchUnchangedAfterRestart is the first fetch of a restarted
// controller: the cache on disk is current, nothing is in memory.
func BenchmarkFetchUnchangedAfterRestart(b *testing.B) {
	urls := benchURLs(b, 1000)
	dir := b.TempDir()
	ctx := context.Background()
	first, err := (&Fetcher{CacheDir: dir}).Fetch(ctx, "ns/apps", urls["http"], Ref{}, Auth{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		rev, err := (&Fetcher{CacheDir: dir}).Fetch(ctx, "ns/apps", urls["http"], Ref{}, Auth{})
		if err != nil || rev != first {
			b.Fatalf("%+v, %v", rev, err)
		}
	}
}

// BenchmarkFetchFirst is a shallow clone and checkout of 3,000 files.
func BenchmarkFetchFirst(b *testing.B) {
	urls := benchURLs(b, 1000)
	dir := b.TempDir()
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		if _, err := (&Fetcher{CacheDir: dir}).Fetch(ctx, fmt.Sprintf("ns/apps-%d", i), urls["http"], Ref{}, Auth{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchOneAppChanged is an incremental fetch of a commit that
// changes one app, with the checkout of the new tree.
func BenchmarkFetchOneAppChanged(b *testing.B) {
	srv, _ := newServer(b)
	r := newAppsRepo(b, filepath.Join(srv.Root(), "apps.git"), 1000)
	url := startHTTP(b, srv)
	url = url[:len(url)-len("repo.git")] + "apps.git"
	f := &Fetcher{CacheDir: b.TempDir()}
	ctx := context.Background()
	// Two fetches first, so that there is an old tree to patch (the second
	// fetch of a cache writes a whole tree once).
	if _, err := f.Fetch(ctx, "ns/apps", url, Ref{}, Auth{}); err != nil {
		b.Fatal(err)
	}
	r.commit("bump app-0007", appFiles7(0))
	if _, err := f.Fetch(ctx, "ns/apps", url, Ref{}, Auth{}); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		want := r.commit("bump app-0007", appFiles7(i))
		b.StartTimer()
		rev, err := f.Fetch(ctx, "ns/apps", url, Ref{}, Auth{})
		if err != nil || rev.Commit != want {
			b.Fatalf("%+v, %v", rev, err)
		}
	}
}

func appFiles7(i int) map[string]string {
	all := appFiles(7, fmt.Sprintf("1.0.%d", i))
	return map[string]string{"apps/app-0007/app.yaml": all["apps/app-0007/app.yaml"]}
}
