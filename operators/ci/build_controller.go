package ci

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"homeostat.dev/homeostat/operators/ci/agent"
	"homeostat.dev/homeostat/operators/ci/steps"
	"homeostat.dev/homeostat/render/api/v1alpha1"
	gitsource "homeostat.dev/homeostat/sync/source"
)

// Reasons on Build conditions.
const (
	ReasonWaiting          = "Waiting"
	ReasonRunning          = "Running"
	ReasonSucceeded        = "BuildSucceeded"
	ReasonFailed           = "BuildFailed"
	ReasonStepsFileInvalid = "StepsFileInvalid"
)

// BuildReconciler runs each Build as a pod and records how it went.
type BuildReconciler struct {
	Client client.Client
	// APIReader reads uncached, so the concurrency cap counts builds that
	// were started a moment ago.
	APIReader client.Reader
	Git       Git
	Pod       PodOptions
	// HTTPClient sends notifications; a 30-second-timeout client when nil.
	HTTPClient *http.Client
	// RetryDelay is the pause before retrying a notification that failed in
	// a way that may pass (a 5xx, a network error); two seconds when zero.
	RetryDelay time.Duration
	// Recorder, when set, records Started, Succeeded, Failed and
	// NotifyFailed events on Builds, for `kubectl describe build`.
	Recorder events.EventRecorder
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// SetupWithManager registers the controller: it follows Builds, their pods,
// and wakes waiting builds when a sibling finishes.
func (r *BuildReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Git == nil {
		r.Git = SourceGit{}
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("build").
		For(&v1alpha1.Build{}).
		Owns(&corev1.Pod{}).
		Watches(&v1alpha1.Build{}, handler.EnqueueRequestsFromMapFunc(r.waitingSiblings)).
		Complete(r)
}

// Reconcile moves one build along; its status is written here and only here.
func (r *BuildReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// Read past the cache: acting on a stale Build (one that another
	// reconcile just finished) would send its notifications twice.
	var b v1alpha1.Build
	if err := r.APIReader.Get(ctx, req.NamespacedName, &b); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := b.DeepCopy()
	res, err := r.step(ctx, &b)
	b.Status.ObservedGeneration = b.Generation
	setConditions(&b)
	if !equality.Semantic.DeepEqual(before.Status, b.Status) {
		patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
		perr := r.Client.Status().Patch(ctx, &b, patch)
		switch {
		case apierrors.IsConflict(perr):
			return ctrl.Result{RequeueAfter: time.Second}, err // changed meanwhile: look again
		case perr != nil && !apierrors.IsNotFound(perr):
			return ctrl.Result{}, errors.Join(err, fmt.Errorf("patch build status: %w", perr))
		}
	}
	return res, err
}

func (r *BuildReconciler) step(ctx context.Context, b *v1alpha1.Build) (ctrl.Result, error) {
	switch {
	case !b.DeletionTimestamp.IsZero():
		return r.release(ctx, b)
	case finished(b):
		return r.finish(ctx, b)
	case b.Status.Pod == "":
		return r.start(ctx, b)
	default:
		return r.track(ctx, b)
	}
}

// start creates the build's pod once the concurrency cap allows it and the
// steps file at the commit is valid.
func (r *BuildReconciler) start(ctx context.Context, b *v1alpha1.Build) (ctrl.Result, error) {
	p, err := r.pipeline(ctx, b)
	if err != nil {
		fail(b, err.Error())
		return r.finish(ctx, b)
	}
	wait, err := r.mustWait(ctx, b, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	if wait != "" {
		b.Status.Phase, b.Status.Message = v1alpha1.BuildPending, wait
		return ctrl.Result{RequeueAfter: 30 * time.Second}, nil
	}
	if p.Spec.Logs != nil {
		if added, err := r.ensureLogFinalizer(ctx, b); added || err != nil {
			return ctrl.Result{RequeueAfter: time.Millisecond}, err
		}
	}
	f, problems, err := r.stepsFile(ctx, b, p)
	if permanentGitError(err) {
		fail(b, err.Error())
		return r.finish(ctx, b)
	}
	if err != nil {
		b.Status.Phase = v1alpha1.BuildPending
		b.Status.Message = err.Error()
		return ctrl.Result{}, err
	}
	if problems == nil {
		// Refused before the pod exists: the secret's value never leaves the API.
		problems = RefusedSecrets(p, b.Spec.Branch, fileName(p), f)
	}
	if problems != nil {
		fail(b, steps.Format(problems))
		return r.finish(ctx, b)
	}
	pod := BuildPod(b, p, f, r.Pod)
	if err := r.Client.Create(ctx, pod); err != nil && !apierrors.IsAlreadyExists(err) {
		return ctrl.Result{}, fmt.Errorf("create build pod %s: %w", pod.Name, err)
	}
	now := metav1.NewTime(r.now())
	b.Status.Phase, b.Status.Pod, b.Status.StartedAt, b.Status.Message = v1alpha1.BuildRunning, pod.Name, &now, ""
	if p.Spec.Logs != nil {
		b.Status.LogURL = logURL(p, b)
	}
	r.event(b, corev1.EventTypeNormal, "Started", "pod %s runs commit %s", pod.Name, shortCommit(b.Spec.Commit))
	if err := r.deliver(ctx, r.notifiers(ctx, p, true), buildEvent(b)); err != nil {
		log.FromContext(ctx).Info("pending commit status not sent", "build", b.Name, "error", err.Error())
	}
	return ctrl.Result{}, nil
}

// mustWait applies the pipeline's concurrency cap, starting waiting builds
// in the order they were made; it says why b waits, or "" when b may start.
func (r *BuildReconciler) mustWait(ctx context.Context, b *v1alpha1.Build, p *v1alpha1.Pipeline) (string, error) {
	var list v1alpha1.BuildList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(b.Namespace), client.MatchingLabels{LabelPipeline: LabelValue(p.Name)}); err != nil {
		return "", fmt.Errorf("list builds of pipeline %s: %w", p.Name, err)
	}
	running, ahead := 0, 0
	for i := range list.Items {
		o := &list.Items[i]
		switch {
		case o.Name == b.Name || finished(o):
		case o.Status.Pod != "":
			running++
		case older(o, b):
			ahead++
		}
	}
	limit := int(concurrency(p))
	switch {
	case running >= limit:
		return fmt.Sprintf("waiting: %d of %d concurrent builds running", running, limit), nil
	case ahead >= limit-running:
		return fmt.Sprintf("waiting: %d older builds start first", ahead), nil
	}
	return "", nil
}

// stepsFile reads the steps file at the build's commit. Problems are the
// author's (a failed build); an error is the controller's (retried).
func (r *BuildReconciler) stepsFile(ctx context.Context, b *v1alpha1.Build, p *v1alpha1.Pipeline) (*steps.File, []steps.Problem, error) {
	auth, err := secretAuth(ctx, r.Client, p)
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "homeostat-build-")
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := r.Git.Clone(ctx, b.Spec.Repo, b.Spec.Commit, dir, auth); err != nil {
		return nil, nil, fmt.Errorf("clone %s: %w", shortCommit(b.Spec.Commit), err)
	}
	name := fileName(p)
	data, err := readInside(dir, name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, []steps.Problem{{File: name, Message: "no steps file at commit " + shortCommit(b.Spec.Commit)}}, nil
	case errors.Is(err, errTooLarge):
		return nil, []steps.Problem{{File: name, Message: fmt.Sprintf("the steps file is larger than %d bytes", maxStepsFile)}}, nil
	case errors.Is(err, errOutside):
		return nil, []steps.Problem{{File: name, Message: "the steps file must be a file inside the repository (not a link out of it)"}}, nil
	case err != nil:
		return nil, nil, fmt.Errorf("read %s: %w", name, err)
	}
	f, problems := steps.Parse(name, data)
	return f, problems, nil
}

var (
	errOutside  = errors.New("outside the checkout")
	errTooLarge = errors.New("too large")
)

// maxStepsFile keeps a huge steps file from costing the controller its memory.
const maxStepsFile = 1 << 20

// readInside reads name inside dir without following a path or symbolic
// link out of it: the checkout is the repository author's, the controller's
// filesystem (its service account token) is not.
func readInside(dir, name string) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer func() { _ = root.Close() }()
	if fi, err := root.Stat(filepath.FromSlash(name)); err == nil && fi.Size() > maxStepsFile {
		return nil, errTooLarge
	}
	data, err := root.ReadFile(filepath.FromSlash(name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		var pe *os.PathError
		if errors.As(err, &pe) && pe.Err.Error() == "path escapes from parent" {
			return nil, errOutside
		}
	}
	return data, err
}

// track follows the pod: resume requests go to it, its end becomes the
// build's result, and a pod that outlives its deadline is stopped.
func (r *BuildReconciler) track(ctx context.Context, b *v1alpha1.Build) (ctrl.Result, error) {
	var pod corev1.Pod
	key := types.NamespacedName{Namespace: b.Namespace, Name: b.Status.Pod}
	err := r.Client.Get(ctx, key, &pod)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, key, &pod) // the cache may lag behind a fresh pod
	}
	if apierrors.IsNotFound(err) {
		fail(b, fmt.Sprintf("build pod %s was deleted", b.Status.Pod))
		return r.finish(ctx, b)
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("get build pod %s: %w", b.Status.Pod, err)
	}
	if b.Spec.Resume && pod.Annotations[AnnotationResume] != "true" {
		patch := client.MergeFrom(pod.DeepCopy())
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[AnnotationResume] = "true"
		if err := r.Client.Patch(ctx, &pod, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("resume build pod %s: %w", pod.Name, err)
		}
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		collect(b, &pod)
		return r.finish(ctx, b)
	}
	b.Status.Phase, b.Status.Message = v1alpha1.BuildRunning, waitingMessage(&pod)
	if agentReady(&pod) {
		b.Status.Phase = v1alpha1.BuildPaused
		b.Status.Message = fmt.Sprintf("paused: kubectl exec -it %s -c %s -- sh; then homeostat ci resume %s", pod.Name, agentName, b.Name)
	}
	if pod.Spec.ActiveDeadlineSeconds != nil {
		// The kubelet enforces the deadline; this is the backstop for a pod
		// stuck where no kubelet acts (an unschedulable pod, a lost node).
		deadline := startedAt(b).Add(time.Duration(*pod.Spec.ActiveDeadlineSeconds)*time.Second + time.Minute)
		if left := deadline.Sub(r.now()); left > 0 {
			return ctrl.Result{RequeueAfter: left}, nil
		}
		if err := r.Client.Delete(ctx, &pod); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("delete timed-out build pod %s: %w", pod.Name, err)
		}
		fail(b, fmt.Sprintf("timed out: pod %s did not finish within %ds", pod.Name, *pod.Spec.ActiveDeadlineSeconds))
		return r.finish(ctx, b)
	}
	return ctrl.Result{}, nil
}

// permanentGitError is a clone failure that retrying will not fix: the
// commit or repository is gone, or the server refuses the credentials.
// Those fail the build; anything else (an unreachable server) is retried.
func permanentGitError(err error) bool {
	for _, kind := range []error{gitsource.ErrRefNotFound, gitsource.ErrRepositoryNotFound, gitsource.ErrAuth} {
		if errors.Is(err, kind) {
			return true
		}
	}
	return false
}

// waitingMessage says why a container of the pod is not running yet (a
// missing secret, an image that cannot be pulled), "" when nothing is stuck.
func waitingMessage(pod *corev1.Pod) string {
	for _, cs := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		w := cs.State.Waiting
		if w == nil || w.Reason == "" || w.Reason == "PodInitializing" || w.Reason == "ContainerCreating" {
			continue
		}
		msg := fmt.Sprintf("container %s waiting: %s", cs.Name, w.Reason)
		if w.Message != "" {
			msg += ": " + w.Message
		}
		return msg
	}
	return ""
}

// agentReady is the agent's readiness, which its probe turns on exactly
// while a pause step waits.
func agentReady(pod *corev1.Pod) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == agentName {
			return cs.Ready && cs.State.Running != nil
		}
	}
	return false
}

// collect copies the agent's result (its termination message) into the
// status, or explains why there is none.
func collect(b *v1alpha1.Build, pod *corev1.Pod) {
	if pod.Status.Reason == "DeadlineExceeded" {
		// The kubelet killed the agent, which had no chance to write a result.
		fail(b, fmt.Sprintf("timed out: pod %s ran past its deadline of %ds", pod.Name, deadlineOf(pod)))
		return
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != agentName || cs.State.Terminated == nil {
			continue
		}
		t := cs.State.Terminated
		res, err := agent.Decode([]byte(t.Message))
		if err != nil {
			fail(b, fmt.Sprintf("the agent ended (exit %d, %s) without a readable result: %v", t.ExitCode, t.Reason, err))
			return
		}
		b.Status.Phase, b.Status.Steps, b.Status.FailedStep, b.Status.Message = res.Phase, res.Steps, res.FailedStep, res.Message
		return
	}
	for _, cs := range pod.Status.InitContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			fail(b, fmt.Sprintf("init container %s failed (exit %d): %s", cs.Name, t.ExitCode, firstNonEmpty(t.Message, t.Reason)))
			return
		}
	}
	fail(b, fmt.Sprintf("build pod %s: %s", pod.Name, firstNonEmpty(pod.Status.Message, pod.Status.Reason, string(pod.Status.Phase))))
}

func deadlineOf(pod *corev1.Pod) int64 {
	if pod.Spec.ActiveDeadlineSeconds == nil {
		return 0
	}
	return *pod.Spec.ActiveDeadlineSeconds
}

// finish records the end once, trims the pipeline's history and notifies.
func (r *BuildReconciler) finish(ctx context.Context, b *v1alpha1.Build) (ctrl.Result, error) {
	if b.Status.CompletedAt == nil {
		now := metav1.NewTime(r.now())
		b.Status.CompletedAt = &now
		b.Status.Duration = now.Sub(startedAt(b)).Round(time.Second).String()
		if b.Status.Phase == v1alpha1.BuildSucceeded {
			r.event(b, corev1.EventTypeNormal, "Succeeded", "build succeeded in %s", b.Status.Duration)
		} else {
			r.event(b, corev1.EventTypeWarning, "Failed", "%s", b.Status.Message)
		}
		if err := r.trimHistory(ctx, b); err != nil {
			log.FromContext(ctx).Error(err, "trim build history", "build", b.Name)
		}
	}
	if b.Status.Notified {
		return ctrl.Result{}, nil
	}
	if p, err := r.pipeline(ctx, b); err == nil { // no pipeline, nobody to tell
		if err := r.deliver(ctx, r.notifiers(ctx, p, false), buildEvent(b)); err != nil {
			log.FromContext(ctx).Error(err, "notification not delivered", "build", b.Name)
			r.event(b, corev1.EventTypeWarning, "NotifyFailed", "%v", err)
		}
	}
	b.Status.Notified = true
	return ctrl.Result{}, nil
}

// trimHistory deletes the oldest finished builds beyond the pipeline's limit.
func (r *BuildReconciler) trimHistory(ctx context.Context, b *v1alpha1.Build) error {
	p, err := r.pipeline(ctx, b)
	if err != nil {
		return nil
	}
	keep := int(p.Spec.History)
	if keep <= 0 {
		keep = 20
	}
	var list v1alpha1.BuildList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(b.Namespace), client.MatchingLabels{LabelPipeline: LabelValue(p.Name)}); err != nil {
		return err
	}
	var done []v1alpha1.Build
	for _, o := range list.Items {
		if o.Name != b.Name && finished(&o) {
			done = append(done, o)
		}
	}
	keep-- // b itself is the newest finished build
	sort.Slice(done, func(i, j int) bool { return older(&done[j], &done[i]) })
	var errs []error
	for i := keep; i < len(done); i++ {
		if keep < 0 {
			break
		}
		if err := r.Client.Delete(ctx, &done[i]); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("delete old build %s: %w", done[i].Name, err))
		}
	}
	return errors.Join(errs...)
}

// waitingSiblings wakes the waiting builds of a pipeline when one of its
// builds finishes, so the next starts without waiting for a requeue.
func (r *BuildReconciler) waitingSiblings(ctx context.Context, o client.Object) []reconcile.Request {
	b, ok := o.(*v1alpha1.Build)
	if !ok || !finished(b) {
		return nil
	}
	var list v1alpha1.BuildList
	if err := r.Client.List(ctx, &list, client.InNamespace(b.Namespace), client.MatchingLabels{LabelPipeline: b.Labels[LabelPipeline]}); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, s := range list.Items {
		if !finished(&s) && s.Status.Pod == "" {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
		}
	}
	return out
}

func (r *BuildReconciler) pipeline(ctx context.Context, b *v1alpha1.Build) (*v1alpha1.Pipeline, error) {
	var p v1alpha1.Pipeline
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: b.Spec.Pipeline.Name}, &p); err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", b.Spec.Pipeline.Name, err)
	}
	return &p, nil
}

// event records an event on b when there is a recorder. Messages never hold
// secrets: notification errors name the target, not its URL or token.
func (r *BuildReconciler) event(b *v1alpha1.Build, kind, reason, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(b, nil, kind, reason, reason, format, args...)
	}
}

func (r *BuildReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func setConditions(b *v1alpha1.Build) {
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&b.Status.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: b.Generation})
	}
	switch b.Status.Phase {
	case v1alpha1.BuildSucceeded:
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonSucceeded, "build succeeded in "+b.Status.Duration)
		set(v1alpha1.ConditionReconciling, metav1.ConditionFalse, ReasonSucceeded, "")
	case v1alpha1.BuildFailed:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonFailed, b.Status.Message)
		set(v1alpha1.ConditionReconciling, metav1.ConditionFalse, ReasonFailed, "")
		if b.Status.Steps == nil && b.Status.Pod == "" && b.Status.Message != "" {
			// Failed before a pod: the steps file (or the pipeline) needs a human.
			set(v1alpha1.ConditionStalled, metav1.ConditionTrue, ReasonStepsFileInvalid, b.Status.Message)
		}
	case v1alpha1.BuildRunning, v1alpha1.BuildPaused:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonRunning, "running in pod "+b.Status.Pod)
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, ReasonRunning, "running in pod "+b.Status.Pod)
	default:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonWaiting, b.Status.Message)
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, ReasonWaiting, b.Status.Message)
	}
}

func fail(b *v1alpha1.Build, msg string) {
	b.Status.Phase, b.Status.Message = v1alpha1.BuildFailed, msg
}

func finished(b *v1alpha1.Build) bool {
	return b.Status.Phase == v1alpha1.BuildSucceeded || b.Status.Phase == v1alpha1.BuildFailed
}

func startedAt(b *v1alpha1.Build) time.Time {
	if b.Status.StartedAt != nil {
		return b.Status.StartedAt.Time
	}
	return b.CreationTimestamp.Time
}

// older orders builds by creation, then name, so the order is total.
func older(a, b *v1alpha1.Build) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

func concurrency(p *v1alpha1.Pipeline) int32 {
	if p.Spec.Concurrency < 1 {
		return 1
	}
	return p.Spec.Concurrency
}

func fileName(p *v1alpha1.Pipeline) string {
	if p.Spec.File == "" {
		return steps.DefaultFile
	}
	return p.Spec.File
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
