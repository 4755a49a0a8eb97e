// Package controller is homeostat's pull loop: one sync of a Sync object as
// a sequence of named steps (fetch, render, apply, prune, wait, snapshot),
// the controller-runtime reconciler that runs it on every interval, and the
// status, events and metrics it leaves behind. `homeostat sync --once` and
// `homeostat controller` both run the same Runner.
package controller

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	gosync "sync"
	"time"

	"github.com/go-logr/logr"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
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
	// ReasonImmutableField: the API server refused a change to an
	// immutable field; the revision is not retried on the interval.
	ReasonImmutableField = "ImmutableFieldChanged"
	// ReasonPruneRefused: the revision would prune too much of the inventory.
	ReasonPruneRefused = "PruneRefused"
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
	// AllowMassPrune lets prunes through that the mass-prune guard would
	// refuse (`homeostat sync --allow-mass-prune`, one run).
	AllowMassPrune bool
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
	// Skipped is true when the sync stopped after fetching because this
	// revision already failed in a way only a new revision, a spec change
	// or a manual sync can fix (an immutable field); nothing was recorded.
	Skipped bool
	objects []render.Object
	// before is the inventory the sync started with.
	before hsync.Inventory
}

// Failed reports whether the sync failed.
func (o Outcome) Failed() bool { return o.Err != nil }

// Sync runs one sync of s: fetch, render, apply, prune, wait, snapshot. It
// never writes s itself: the caller records the Outcome with ApplyStatus
// and patches the status once. A revision that fails to render applies and
// prunes nothing; a failed apply prunes nothing.
func (r *Runner) Sync(ctx context.Context, s *v1alpha1.Sync, trigger string) Outcome {
	o := Outcome{Trigger: trigger}
	inv, err := hsync.SyncInventory(s.Status)
	if err != nil {
		// Never sync (and so never record) over an inventory we cannot read.
		r.Log.Error(err, "read inventory", "sync", s.Namespace+"/"+s.Name)
		o.Skipped, o.Err = true, err
		return o
	}
	o.Inventory, o.before = inv, inv
	o.Timings.StartedAt = &metav1.Time{Time: time.Now()}
	if timeout := durationOr(s.Spec.Timeout, 5*time.Minute); timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var verifyMillis int64
	steps := []struct {
		name   string
		reason string
		millis *int64
		run    func(context.Context, *v1alpha1.Sync, *Outcome) error
	}{
		{"fetch", ReasonArtifactFailed, &o.Timings.FetchMillis, r.fetch},
		{"verify", ReasonVerificationFailed, &verifyMillis, r.verify},
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
			o.Reason, o.Err = failureReason(st.reason, err), fmt.Errorf("%s: %w", st.name, err)
			break
		}
		if st.name == "fetch" && stalledOn(s, o) {
			o.Skipped = true
			return o
		}
	}
	o.Timings.FinishedAt = &metav1.Time{Time: time.Now()}
	r.snapshot(context.WithoutCancel(ctx), s, &o)
	return o
}

// failureReason refines a step's reason for failures that need a person.
func failureReason(reason string, err error) string {
	var refused *hsync.RefusedError
	var mass *hsync.MassPruneError
	switch {
	case errors.As(err, &refused) && refused.Immutable():
		return ReasonImmutableField
	case errors.As(err, &mass):
		return ReasonPruneRefused
	}
	return reason
}

// stalledOn reports whether a periodic sync of rev would only repeat a
// failure that retrying cannot fix: the same revision of the same spec
// stalled on an immutable field. A new revision, a spec change (such as
// spec.force) or a manual sync tries again.
func stalledOn(s *v1alpha1.Sync, o Outcome) bool {
	if o.Trigger != TriggerInterval || s.Status.ObservedGeneration != s.Generation ||
		o.Revision.Name == "" || o.Revision.Name != s.Status.LastAttemptedRevision {
		return false
	}
	c := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionStalled)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonImmutableField
}

// fetch brings the revision onto disk.
func (r *Runner) fetch(ctx context.Context, s *v1alpha1.Sync, o *Outcome) error {
	rev, err := r.Source.Fetch(ctx, s)
	o.Revision = rev
	return err
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
	opts := hsync.ApplyOptions{Force: s.Spec.Force, BeforeWrite: r.recordIntent(s, o)}
	cs, err := eng.ApplyWith(ctx, target(s), o.objects, o.Inventory, opts)
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
	if err := hsync.CheckPrune(o.before, stale, s.Spec.PruneLimit, r.AllowMassPrune); err != nil {
		o.Inventory = union(applied, stale)
		return err
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
	// Kept objects (a Namespace still holding others' objects) stay owned.
	o.Inventory = union(applied, cs.Inventory())
	return nil
}

// recordIntent returns the Apply hook that writes the inventory intent:
// before the first write, the Sync's status.inventory becomes what it owned
// plus everything about to be written, so a process killed mid-apply leaves
// no object the next sync would not prune. It costs one status patch per
// sync that writes anything, and none when the objects are owned already.
func (r *Runner) recordIntent(s *v1alpha1.Sync, o *Outcome) func(context.Context, hsync.Inventory) error {
	return func(ctx context.Context, refs hsync.Inventory) error {
		inv := union(o.Inventory, refs)
		if len(inv) == len(o.Inventory) {
			return nil
		}
		base := s.DeepCopy()
		hsync.SetSyncInventory(&s.Status, inv)
		if err := r.Client.Status().Patch(ctx, s, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			s.Status = base.Status
			return fmt.Errorf("sync %s/%s: %w", s.Namespace, s.Name, err)
		}
		o.Inventory = inv
		return nil
	}
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
