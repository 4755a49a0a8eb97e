// Package controller is homeostat's pull loop: one sync of a Sync object as
// a sequence of named steps (fetch, render, apply, prune, wait, snapshot),
// the controller-runtime reconciler that runs it on every interval, and the
// status, events and metrics it leaves behind. `homeostat sync --once` and
// `homeostat controller` both run the same Runner.
package controller

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"strings"
	gosync "sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render"
	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
	"homeostat.dev/homeostat/sync/snapshot"
)

// Condition reasons. They are stable: users and alerts grep for them.
const (
	ReasonSucceeded   = "ReconciliationSucceeded"
	ReasonProgressing = "Progressing"
	// ReasonProgressingWithRetry marks Reconciling while a failed sync
	// waits for its retry.
	ReasonProgressingWithRetry = "ProgressingWithRetry"
	ReasonArtifactFailed       = "ArtifactFailed"
	ReasonRenderFailed         = "RenderFailed"
	ReasonApplyFailed          = "ApplyFailed"
	ReasonPruneFailed          = "PruneFailed"
	ReasonHealthFailed         = "HealthCheckFailed"
	ReasonSuspended            = "Suspended"
	ReasonRolledBack           = "RolledBack"
)

// Triggers: what started a sync, recorded in its Snapshot.
const (
	TriggerInterval = "interval"
	TriggerManual   = "manual"
	TriggerWebhook  = "webhook"
	TriggerRollback = "rollback"
)

// Revision is one fetched commit with its tree on disk.
type Revision struct {
	// Name is "branch@sha1:<hash>".
	Name            string
	Commit          string
	Message, Author string
	Dir             string
}

// Source fetches the revision a Sync follows. GitSource is the real one.
type Source interface {
	Fetch(ctx context.Context, s *v1alpha1.Sync) (Revision, error)
}

// RenderFunc renders a folder of a repository tree, the repository root
// being the boundary for references; render.RenderPath in production.
type RenderFunc func(fsys fs.FS, path string) ([]render.Object, []render.Problem)

// Runner runs one sync of a Sync. Its fields are required unless noted.
type Runner struct {
	// Client reads and writes Syncs and Snapshots.
	Client client.Client
	Engine *hsync.Engine
	// Impersonate, when set, makes the Engine of a Sync that names
	// spec.serviceAccountName: it applies, prunes and waits as that service
	// account, so a repository can change only what the account may.
	// NewImpersonator builds one.
	Impersonate func(namespace, serviceAccount string) (*hsync.Engine, error)
	Source      Source
	// Render defaults to render.RenderPath, its warnings logged.
	Render RenderFunc
	// Log is optional.
	Log logr.Logger
}

// Outcome is what one sync did; ApplyStatus turns it into the Sync's status.
type Outcome struct {
	Revision  Revision
	Changes   hsync.ChangeSet
	Inventory hsync.Inventory
	Healthy   bool
	Health    []hsync.Change
	Timings   v1alpha1.SnapshotTimings
	// Reason is the Ready condition's reason; Err is nil on success.
	Reason string
	Err    error
	// Snapshot is the name of the Snapshot written, "" when the sync changed
	// nothing and needed no record.
	Snapshot string
	Trigger  string
	objects  []render.Object
}

// Failed reports whether the sync failed.
func (o Outcome) Failed() bool { return o.Err != nil }

// Sync runs one sync of s: fetch, render, apply, prune, wait, snapshot. It
// never writes s itself: the caller records the Outcome with ApplyStatus
// and patches the status once. A revision that fails to render applies and
// prunes nothing; a failed apply prunes nothing.
func (r *Runner) Sync(ctx context.Context, s *v1alpha1.Sync, trigger string) Outcome {
	o := Outcome{Trigger: trigger, Inventory: hsync.InventoryFromAPI(s.Status.Inventory)}
	o.Timings.StartedAt = &metav1.Time{Time: time.Now()}
	if timeout := durationOr(s.Spec.Timeout, 5*time.Minute); timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	steps := []struct {
		name   string
		reason string
		millis *int64
		run    func(context.Context, *v1alpha1.Sync, *Outcome) error
	}{
		{"fetch", ReasonArtifactFailed, &o.Timings.FetchMillis, r.fetch},
		{"render", ReasonRenderFailed, &o.Timings.RenderMillis, r.render},
		{"apply", ReasonApplyFailed, &o.Timings.ApplyMillis, r.apply},
		{"prune", ReasonPruneFailed, &o.Timings.PruneMillis, r.prune},
		{"wait", ReasonHealthFailed, &o.Timings.WaitMillis, r.wait},
	}
	o.Reason = ReasonSucceeded
	for _, st := range steps {
		start := time.Now()
		err := st.run(ctx, s, &o)
		*st.millis = time.Since(start).Milliseconds()
		if err != nil {
			o.Reason, o.Err = st.reason, fmt.Errorf("%s: %w", st.name, err)
			break
		}
	}
	o.Timings.FinishedAt = &metav1.Time{Time: time.Now()}
	r.snapshot(context.WithoutCancel(ctx), s, &o)
	return o
}

// fetch brings the revision onto disk.
func (r *Runner) fetch(ctx context.Context, s *v1alpha1.Sync, o *Outcome) error {
	rev, err := r.Source.Fetch(ctx, s)
	if err != nil {
		return err
	}
	o.Revision = rev
	return nil
}

// render turns spec.path of the revision into objects; any problem rejects
// the whole revision, naming every file and line at fault.
func (r *Runner) render(_ context.Context, s *v1alpha1.Sync, o *Outcome) error {
	renderFn := r.Render
	if renderFn == nil {
		renderFn = r.renderPath
	}
	objs, problems := renderFn(os.DirFS(o.Revision.Dir), s.Spec.Path)
	if len(problems) > 0 {
		msgs := make([]string, 0, len(problems))
		for _, p := range problems {
			msgs = append(msgs, p.Error())
		}
		return fmt.Errorf("revision %s rejected: %s", o.Revision.Name, strings.Join(msgs, "; "))
	}
	o.objects = objs
	return nil
}

// renderPath is render.RenderPath with its warnings (kustomize's deprecated
// fields) logged.
func (r *Runner) renderPath(fsys fs.FS, p string) ([]render.Object, []render.Problem) {
	res := render.RenderPath(fsys, p)
	for _, w := range res.Warnings {
		r.Log.Info("render warning", "warning", w.Error())
	}
	return res.Objects, res.Problems
}

// apply applies the rendered objects. On failure the inventory keeps what
// it had plus whatever was applied, so nothing created is ever forgotten.
func (r *Runner) apply(ctx context.Context, s *v1alpha1.Sync, o *Outcome) error {
	eng, err := r.engine(s)
	if err != nil {
		return err
	}
	cs, err := eng.Apply(ctx, target(s), o.objects, o.Inventory)
	o.Changes = cs
	if err != nil {
		o.Inventory = union(o.Inventory, cs.Inventory())
		return err
	}
	// The snapshot records objects as applied: namespaces filled in.
	o.objects = eng.WithNamespaces(target(s), o.objects)
	return nil
}

// prune deletes what left git, unless spec.prune is false.
func (r *Runner) prune(ctx context.Context, s *v1alpha1.Sync, o *Outcome) error {
	applied := o.Changes.Inventory()
	stale := o.Inventory.Minus(applied)
	if s.Spec.Prune != nil && !*s.Spec.Prune {
		// Not pruning: keep owning what was left behind, so turning prune
		// back on later still cleans it up.
		o.Inventory = union(applied, stale)
		return nil
	}
	eng, err := r.engine(s)
	if err != nil {
		return err
	}
	cs, err := eng.Prune(ctx, target(s), stale)
	o.Changes.Add(cs.Changes...)
	if err != nil {
		o.Inventory = union(applied, stale)
		return err
	}
	o.Inventory = applied
	return nil
}

// wait waits for health unless spec.wait is false.
func (r *Runner) wait(ctx context.Context, s *v1alpha1.Sync, o *Outcome) error {
	if s.Spec.Wait != nil && !*s.Spec.Wait {
		o.Healthy = true
		return nil
	}
	eng, err := r.engine(s)
	if err != nil {
		return err
	}
	health, err := eng.Wait(ctx, o.Changes.Inventory(), durationOr(s.Spec.Timeout, 5*time.Minute))
	o.Health = health
	o.Healthy = err == nil
	return err
}

// snapshot records the attempt. A periodic sync that found the revision
// unchanged and nothing to do writes nothing: the history is for changes,
// failures and human actions, and an idle cluster should see no writes.
func (r *Runner) snapshot(ctx context.Context, s *v1alpha1.Sync, o *Outcome) {
	if o.Err == nil && o.Trigger == TriggerInterval && !o.Changes.Changed() &&
		o.Revision.Name == s.Status.LastAppliedRevision {
		return
	}
	snap, err := snapshot.Write(ctx, r.Client, s, snapshot.Record{
		Revision: o.Revision.Name, Message: o.Revision.Message, Author: o.Revision.Author,
		Path: s.Spec.Path, Trigger: o.Trigger,
		Changes: o.Changes, Inventory: o.Inventory,
		Healthy: o.Healthy, Health: o.Health, Timings: o.Timings,
		Err: o.Err, Objects: o.objects,
	})
	if err != nil {
		r.Log.Error(err, "write snapshot", "sync", s.Namespace+"/"+s.Name)
	}
	if snap != nil {
		o.Snapshot = snap.Name
	}
}

// engine is the Engine a Sync applies with: impersonating its service
// account when it names one.
func (r *Runner) engine(s *v1alpha1.Sync) (*hsync.Engine, error) {
	if s.Spec.ServiceAccountName == "" {
		return r.Engine, nil
	}
	if r.Impersonate == nil {
		return nil, fmt.Errorf("spec.serviceAccountName %q: this runner cannot impersonate", s.Spec.ServiceAccountName)
	}
	return r.Impersonate(s.Namespace, s.Spec.ServiceAccountName)
}

// NewImpersonator returns an Impersonate function that makes (once per
// service account) Engines acting as system:serviceaccount:NS:NAME.
func NewImpersonator(cfg *rest.Config) func(namespace, serviceAccount string) (*hsync.Engine, error) {
	var mu gosync.Mutex
	engines := map[string]*hsync.Engine{}
	return func(namespace, sa string) (*hsync.Engine, error) {
		user := "system:serviceaccount:" + namespace + ":" + sa
		mu.Lock()
		defer mu.Unlock()
		if e, ok := engines[user]; ok {
			return e, nil
		}
		c := rest.CopyConfig(cfg)
		c.Impersonate = rest.ImpersonationConfig{UserName: user}
		e, err := hsync.New(c, hsync.Options{})
		if err != nil {
			return nil, fmt.Errorf("engine impersonating %s: %w", user, err)
		}
		engines[user] = e
		return e, nil
	}
}

// target is whom a Sync applies for.
func target(s *v1alpha1.Sync) hsync.Target {
	ns := s.Spec.TargetNamespace
	if ns == "" {
		ns = s.Namespace
	}
	return hsync.Target{Name: s.Name, Namespace: s.Namespace, DefaultNamespace: ns}
}

func union(a, b hsync.Inventory) hsync.Inventory {
	out := append(hsync.Inventory(nil), a...)
	return append(out, b.Minus(a)...)
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil || d.Duration <= 0 {
		return def
	}
	return d.Duration
}
