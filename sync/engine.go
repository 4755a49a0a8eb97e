package sync

import (
	"context"
	"fmt"
	"net/http"
	gosync "sync"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/engine"
	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"homeostat.dev/homeostat/render"
)

// FieldManager is the server-side apply field manager of everything homeostat applies.
const FieldManager = "homeostat"

// Labels and annotations homeostat puts on every object it applies.
const (
	// LabelSync and LabelSyncNamespace name the Sync that applied an object;
	// prune deletes only objects that still carry them, and the no-op check
	// lists objects by them.
	LabelSync          = "homeostat.dev/sync"
	LabelSyncNamespace = "homeostat.dev/sync-namespace"
	// AnnotationHash is a hash of the object as homeostat last applied it. An
	// object whose hash matches and whose fields nobody else took is not sent
	// again, which is what makes a sync with nothing to do free.
	AnnotationHash = "homeostat.dev/hash"
)

// Target says for whom objects are applied: the Sync's name and namespace
// (written as labels, so prune never touches another Sync's objects) and the
// namespace given to namespaced objects that name none.
type Target struct {
	Name, Namespace string
	// DefaultNamespace is spec.targetNamespace, or the Sync's namespace.
	DefaultNamespace string
}

func (t Target) labels() map[string]string {
	return map[string]string{LabelSync: t.Name, LabelSyncNamespace: t.Namespace}
}

// Options tune an Engine.
type Options struct {
	// Concurrency is how many requests are in flight at once within a stage
	// (default 16; dry-runs twice as many).
	Concurrency int
	// HTTPClient, when set, carries every request (tests wrap its transport to
	// count writes).
	HTTPClient *http.Client
	// Watch keeps the metadata of applied objects up to date from watches
	// (one per kind, started on first use), so a sync with nothing to do
	// sends no request at all. For long-lived Engines (the controller); a
	// change made by hand is then seen once its watch event has arrived.
	Watch bool
}

// Engine applies, prunes, plans and waits for one cluster. It is safe for
// concurrent use by several Syncs; it remembers, per object, the fields
// homeostat owned after its last apply, so drift is found without a
// request per object.
type Engine struct {
	client      client.Client
	rest        *rest.RESTClient
	mapper      meta.RESTMapper
	rm          *ssa.ResourceManager
	concurrency int
	cfg         *rest.Config // for the discovery and metadata clients prune needs
	httpClient  *http.Client

	mu     gosync.Mutex
	fields map[string]string // Ref.ID() -> hash of homeostat's managed fields

	meta    metadata.Interface // nil unless Options.Watch
	life    context.Context    // ends the watches; see Close
	stop    context.CancelFunc
	wmu     gosync.Mutex
	watches map[schema.GroupVersionKind]*kindWatch
}

// Close stops the Engine's watches.
func (e *Engine) Close() { e.stop() }

// New connects an Engine to the cluster cfg reaches. Client-side rate
// limiting is lifted: applying thousands of objects is bound by the API
// server, not by a 5-requests-per-second default.
func New(cfg *rest.Config, opts Options) (*Engine, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 5000, 10000
	if opts.Concurrency <= 0 {
		opts.Concurrency = 16
	}
	httpClient := opts.HTTPClient
	if httpClient == nil {
		var err error
		if httpClient, err = rest.HTTPClientFor(cfg); err != nil {
			return nil, fmt.Errorf("http client for %s: %w", cfg.Host, err)
		}
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("discover the API of %s: %w", cfg.Host, err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{HTTPClient: httpClient, Mapper: mapper, Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", cfg.Host, err)
	}
	rcfg := rest.CopyConfig(cfg)
	rcfg.GroupVersion = nil
	rcfg.APIPath = "/"
	rcfg.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	rc, err := rest.UnversionedRESTClientForConfigAndClient(rcfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("rest client for %s: %w", cfg.Host, err)
	}
	poller := polling.NewStatusPoller(c, mapper, polling.Options{
		CustomStatusReaders: []engine.StatusReader{newOperatorStatusReader(mapper)},
	})
	rm := ssa.NewResourceManager(c, poller, ssa.Owner{Field: FieldManager, Group: "homeostat.dev"})
	e := &Engine{client: c, rest: rc, mapper: mapper, rm: rm, concurrency: opts.Concurrency, fields: map[string]string{},
		cfg: cfg, httpClient: httpClient,
		watches: map[schema.GroupVersionKind]*kindWatch{}}
	e.life, e.stop = context.WithCancel(context.Background())
	if opts.Watch {
		if e.meta, err = metadata.NewForConfigAndClient(cfg, httpClient); err != nil {
			return nil, fmt.Errorf("metadata client for %s: %w", cfg.Host, err)
		}
	}
	return e, nil
}

// Client is the controller-runtime client the Engine uses.
func (e *Engine) Client() client.Client { return e.client }

// Mapper is the Engine's RESTMapper, which learns new CRDs as they appear.
func (e *Engine) Mapper() meta.RESTMapper { return e.mapper }

func (e *Engine) rememberFields(id, h string) {
	e.mu.Lock()
	e.fields[id] = h
	e.mu.Unlock()
}

func (e *Engine) knownFields(id string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h, ok := e.fields[id]
	return h, ok
}

func (e *Engine) forgetFields(id string) {
	e.mu.Lock()
	delete(e.fields, id)
	e.mu.Unlock()
}

// WithNamespaces returns objs with the target's default namespace filled
// in where a namespaced object names none, as Apply does; objects are
// copied only when changed. Kinds the cluster does not know are left as they are.
func (e *Engine) WithNamespaces(t Target, objs []render.Object) []render.Object {
	out := make([]render.Object, len(objs))
	for i, o := range objs {
		out[i] = o
		if o.Object == nil || o.Object.GetNamespace() != "" {
			continue
		}
		gvk := o.Object.GroupVersionKind()
		m, err := e.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil || m.Scope.Name() != meta.RESTScopeNameNamespace {
			continue
		}
		out[i].Object = o.Object.DeepCopy()
		out[i].Object.SetNamespace(t.DefaultNamespace)
	}
	return out
}
