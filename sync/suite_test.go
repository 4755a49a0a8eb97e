package sync

import (
	"context"
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/render"
)

// env is the package's one API server, started in TestMain.
var env *testenv.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	// HOMEOSTAT_TEST_PPROF=127.0.0.1:PORT serves this test process's
	// pprof while it runs: a benchmark that does not finish still shows
	// where its time goes.
	if addr := os.Getenv("HOMEOSTAT_TEST_PPROF"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
	testenv.Main(m, &env)
}

// writeCounter counts the requests that could change the cluster; dry-runs
// and reads do not count.
type writeCounter struct {
	mu    gosync.Mutex
	n     atomic.Int64
	all   atomic.Int64 // every request, reads and watches included
	dry   atomic.Int64 // dry-run requests
	paths []string
}

func (w *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		w.all.Add(1)
		if strings.Contains(r.URL.RawQuery, "dryRun=") {
			w.dry.Add(1)
		}
		if r.Method != http.MethodGet && !strings.Contains(r.URL.RawQuery, "dryRun=") {
			w.n.Add(1)
			w.mu.Lock()
			w.paths = append(w.paths, r.Method+" "+r.URL.Path)
			w.mu.Unlock()
		}
		return rt.RoundTrip(r)
	})
}

func (w *writeCounter) reset() {
	w.n.Store(0)
	w.all.Store(0)
	w.dry.Store(0)
	w.mu.Lock()
	w.paths = nil
	w.mu.Unlock()
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// newEngine returns an Engine whose write requests are counted.
func newEngine(t testing.TB) (*Engine, *writeCounter) {
	return newEngineWith(t, Options{})
}

func newEngineWith(t testing.TB, opts Options) (*Engine, *writeCounter) {
	t.Helper()
	w := &writeCounter{}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(w.wrap)
	e, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, w
}

// namespace creates a fresh namespace for one test (suffixed when a test
// runs again under -count).
func namespace(t testing.TB, name string) string {
	t.Helper()
	for i := 0; ; i++ {
		n := name
		if i > 0 {
			n = fmt.Sprintf("%s-%d", name, i)
		}
		err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}})
		if err == nil {
			return n
		}
		if !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

// configMap builds a rendered ConfigMap.
func configMap(name string, data map[string]any) render.Object {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name},
		"data":     data,
	}}
	return render.Object{Object: u, Source: render.Source{File: "apps/" + name + ".yaml", Line: 1}}
}
