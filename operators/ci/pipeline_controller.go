package ci

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	gitsource "homeostat.dev/homeostat/sync/source"
)

// PipelineReconciler polls each Pipeline's repository on its interval and
// makes one Build per new commit on a watched branch.
type PipelineReconciler struct {
	Client client.Client
	Git    Git
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	triggers chan event.GenericEvent
}

// Reasons on Pipeline conditions.
const (
	ReasonPolled      = "Polled"
	ReasonPollFailed  = "PollFailed"
	ReasonSecretError = "SecretError"
	ReasonSuspended   = "Suspended"
)

// SetupWithManager registers the controller; Trigger works once it runs.
func (r *PipelineReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Git == nil {
		r.Git = SourceGit{}
	}
	r.triggers = make(chan event.GenericEvent, 64)
	return ctrl.NewControllerManagedBy(mgr).
		Named("pipeline").
		// Only spec changes: the status this controller writes after every
		// poll must not cause the next poll.
		For(&v1alpha1.Pipeline{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(r.triggers, &handler.EnqueueRequestForObject{})).
		Complete(r)
}

// Trigger polls at once every Pipeline whose repository is one of repoURLs
// (compared by host and path, so https and ssh URLs of a repository match).
// A push webhook calls it; it returns how many pipelines it woke.
func (r *PipelineReconciler) Trigger(ctx context.Context, repoURLs []string) (int, error) {
	want := map[string]bool{}
	for _, u := range repoURLs {
		want[NormalizeRepo(u)] = true
	}
	var list v1alpha1.PipelineList
	if err := r.Client.List(ctx, &list); err != nil {
		return 0, fmt.Errorf("list pipelines: %w", err)
	}
	n := 0
	for i := range list.Items {
		p := &list.Items[i]
		if !want[NormalizeRepo(p.Spec.Repo)] {
			continue
		}
		select {
		case r.triggers <- event.GenericEvent{Object: p}:
			n++
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
	return n, nil
}

// Reconcile polls one pipeline.
func (r *PipelineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var p v1alpha1.Pipeline
	if err := r.Client.Get(ctx, req.NamespacedName, &p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := p.DeepCopy()
	interval := time.Minute
	if p.Spec.Interval != nil && p.Spec.Interval.Duration > 0 {
		interval = p.Spec.Interval.Duration
	}
	err := r.poll(ctx, &p)
	p.Status.ObservedGeneration = p.Generation
	if perr := r.Client.Status().Patch(ctx, &p, client.MergeFrom(before)); perr != nil && !apierrors.IsNotFound(perr) {
		return ctrl.Result{}, errors.Join(err, fmt.Errorf("patch pipeline status: %w", perr))
	}
	if err != nil {
		log.FromContext(ctx).Error(err, "poll failed", "pipeline", req.NamespacedName)
	}
	if p.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: interval}, nil
}

// poll asks the repository for its branches and makes the missing builds.
// Every outcome is written to p's status; the returned error is for the log.
func (r *PipelineReconciler) poll(ctx context.Context, p *v1alpha1.Pipeline) error {
	if p.Spec.Suspend {
		r.setReady(p, metav1.ConditionFalse, ReasonSuspended, "polling is suspended")
		return nil
	}
	auth, err := r.auth(ctx, p)
	if err != nil {
		r.setReady(p, metav1.ConditionFalse, ReasonSecretError, err.Error())
		return err
	}
	heads, err := r.Git.LsRemote(ctx, p.Spec.Repo, auth)
	if err != nil {
		r.setReady(p, metav1.ConditionFalse, ReasonPollFailed, err.Error())
		return err
	}
	now := metav1.NewTime(r.now())
	p.Status.LastPolled = &now
	seen := map[string]string{}
	for _, h := range p.Status.Heads {
		seen[h.Branch] = h.Commit
	}
	var next []v1alpha1.BranchHead
	for _, branch := range sortedKeys(heads) {
		if !MatchBranch(p.Spec.Branches, branch) {
			continue
		}
		commit := heads[branch]
		if seen[branch] != commit {
			name, err := r.createBuild(ctx, p, branch, commit)
			if err != nil {
				r.setReady(p, metav1.ConditionFalse, ReasonPollFailed, err.Error())
				return err
			}
			p.Status.LastBuild = name
		}
		next = append(next, v1alpha1.BranchHead{Branch: branch, Commit: commit})
	}
	p.Status.Heads = next
	r.setReady(p, metav1.ConditionTrue, ReasonPolled, fmt.Sprintf("%d watched branches", len(next)))
	return nil
}

// createBuild makes the build of commit on branch; one that exists already
// (made before a restart, or by a racing poll) counts as made.
func (r *PipelineReconciler) createBuild(ctx context.Context, p *v1alpha1.Pipeline, branch, commit string) (string, error) {
	b := NewBuild(p, branch, commit)
	if err := r.Client.Create(ctx, b); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create build %s: %w", b.Name, err)
	}
	log.FromContext(ctx).Info("build created", "build", b.Name, "branch", branch, "commit", commit)
	return b.Name, nil
}

func (r *PipelineReconciler) auth(ctx context.Context, p *v1alpha1.Pipeline) (gitsource.Auth, error) {
	return secretAuth(ctx, r.Client, p)
}

// secretAuth reads a pipeline's clone credentials.
func secretAuth(ctx context.Context, c client.Client, p *v1alpha1.Pipeline) (gitsource.Auth, error) {
	if p.Spec.SecretRef == nil {
		return gitsource.Auth{}, nil
	}
	var s corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: p.Spec.SecretRef.Name}, &s); err != nil {
		return gitsource.Auth{}, fmt.Errorf("secret %s: %w", p.Spec.SecretRef.Name, err)
	}
	a, err := gitsource.AuthFromSecret(s.Data)
	if err != nil {
		return a, fmt.Errorf("secret %s: %w", p.Spec.SecretRef.Name, err)
	}
	return a, nil
}

func (r *PipelineReconciler) setReady(p *v1alpha1.Pipeline, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: msg, ObservedGeneration: p.Generation,
	})
}

func (r *PipelineReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
