package controller

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	gitcache "github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
	"homeostat.dev/homeostat/sync/source"
)

// env is the package's one API server, started in TestMain.
var env *testenv.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	testenv.Main(m, &env)
}

// gitRepo is a real repository on disk; its git directory is laid out like
// a bare repository so file:// and git servers serve it as it is.
type gitRepo struct {
	t         testing.TB
	dir, work string
	repo      *git.Repository
	tick      int
}

func newGitRepo(t testing.TB, dir string) *gitRepo {
	t.Helper()
	work := t.TempDir()
	st := filesystem.NewStorage(osfs.New(dir), gitcache.NewObjectLRUDefault())
	repo, err := git.InitWithOptions(st, osfs.New(work), git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")})
	if err != nil {
		t.Fatalf("init %s: %v", dir, err)
	}
	return &gitRepo{t: t, dir: dir, work: work, repo: repo}
}

func (r *gitRepo) url() string { return "file://" + r.dir }

// commit writes files (path -> content; "" deletes) and commits them.
func (r *gitRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	for p, content := range files {
		if content == "" {
			if _, err := wt.Remove(p); err != nil {
				r.t.Fatalf("remove %s: %v", p, err)
			}
			continue
		}
		full := filepath.Join(r.work, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	// One add of the whole tree: adding files one by one rewrites the
	// index each time, which a thousand-file commit cannot afford.
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		r.t.Fatalf("add: %v", err)
	}
	r.tick++
	h, err := wt.Commit(msg, &git.CommitOptions{
		Author:            &object.Signature{Name: "Ada Lovelace", Email: "ada@example.com", When: time.Unix(1700000000+int64(r.tick), 0)},
		AllowEmptyCommits: true,
	})
	if err != nil {
		r.t.Fatalf("commit: %v", err)
	}
	return h.String()
}

// configMapYAML is a plain manifest of one ConfigMap.
func configMapYAML(name, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  value: %q\n", name, value)
}

// appYAML is a homeostat App in namespace ns.
func appYAML(name, ns, image string) string {
	return fmt.Sprintf("apiVersion: homeostat.dev/v1alpha1\nkind: App\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  image: %s\n", name, ns, image)
}

// writeCounter counts requests that could change the cluster (dry-runs and
// reads do not count).
type writeCounter struct {
	mu    gosync.Mutex
	n     atomic.Int64
	all   atomic.Int64 // every request to the API server, reads included
	paths []string
}

func (w *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		w.all.Add(1)
		if r.Method != http.MethodGet && !strings.Contains(r.URL.RawQuery, "dryRun=") {
			w.n.Add(1)
			w.mu.Lock()
			w.paths = append(w.paths, r.Method+" "+r.URL.Path)
			w.mu.Unlock()
		}
		return rt.RoundTrip(r)
	})
}

func (w *writeCounter) reset() { w.n.Store(0); w.mu.Lock(); w.paths = nil; w.mu.Unlock() }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fixture is one Sync of one repository, with a Runner whose writes are counted.
type fixture struct {
	t      *testing.T
	ns     string
	repo   *gitRepo
	runner *Runner
	c      client.Client
	writes *writeCounter
	sync   *v1alpha1.Sync
}

// newFixture creates a namespace, a repository and a Sync (wait off, as no
// Deployment can become ready without nodes) following it.
func newFixture(t *testing.T, name string) *fixture {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	w := &writeCounter{}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(w.wrap)
	eng, err := hsync.New(cfg, hsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "repo.git"))
	f := &fixture{t: t, ns: name, repo: repo, c: c, writes: w,
		runner: &Runner{Log: testr.New(t), Client: c, Engine: eng, Source: GitSource{Fetcher: &source.Fetcher{CacheDir: t.TempDir()}, Client: c}}}
	f.sync = &v1alpha1.Sync{
		ObjectMeta: metav1.ObjectMeta{Name: "apps", Namespace: name},
		Spec:       v1alpha1.SyncSpec{URL: repo.url(), Path: "./", Wait: new(false)},
	}
	if err := env.Client.Create(ctx, f.sync); err != nil {
		t.Fatal(err)
	}
	return f
}

// run syncs once, records the status like the CLI does, and returns the outcome.
func (f *fixture) run(trigger string) Outcome {
	f.t.Helper()
	ctx := context.Background()
	if err := f.c.Get(ctx, client.ObjectKeyFromObject(f.sync), f.sync); err != nil {
		f.t.Fatal(err)
	}
	o := f.runner.Sync(ctx, f.sync, trigger)
	base := f.sync.DeepCopy()
	ApplyStatus(f.sync, o)
	if err := f.c.Status().Patch(ctx, f.sync, client.MergeFrom(base)); err != nil {
		f.t.Fatal(err)
	}
	return o
}

// mustSucceed fails the test when the sync failed.
func mustSucceed(t *testing.T, o Outcome) {
	t.Helper()
	if o.Err != nil {
		t.Fatalf("sync failed (%s): %v\n%s", o.Reason, o.Err, o.Changes)
	}
}

// configMap reads a ConfigMap's value, "" when it does not exist.
func configMapValue(t *testing.T, ns, name string) (string, bool) {
	t.Helper()
	var cm corev1.ConfigMap
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &cm)
	if err != nil {
		if client.IgnoreNotFound(err) == nil {
			return "", false
		}
		t.Fatal(err)
	}
	return cm.Data["value"], true
}
