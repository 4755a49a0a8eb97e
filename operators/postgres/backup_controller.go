package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// BackupReconciler carries out Backup objects: a Job running `homeostat
// backup push` against the cluster's primary, then the backup's manifest read
// back from the store into status, then retention of Backup objects.
type BackupReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	Options  Options
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Reconcile moves one Backup from Pending through Running to Completed or
// Failed and writes its status once.
func (r *BackupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	b := &v1alpha1.Backup{}
	if err := r.Get(ctx, req.NamespacedName, b); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if b.Status.Phase == v1alpha1.BackupCompleted || b.Status.Phase == v1alpha1.BackupFailed {
		return ctrl.Result{}, nil
	}
	orig := b.DeepCopy()
	defer func() {
		if retErr != nil && isTerminal(retErr) {
			b.Status.Phase, b.Status.Error = v1alpha1.BackupFailed, retErr.Error()
			b.Status.StoppedAt = ptrTime(r.now())
		}
		if err := r.Status().Patch(ctx, b, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
			retErr = errors.Join(retErr, fmt.Errorf("patch backup status: %w", err))
		}
		if isTerminal(retErr) {
			retErr = nil
		}
	}()
	pg, err := r.cluster(ctx, b)
	if err != nil {
		return ctrl.Result{}, err
	}
	j := &batchv1.Job{}
	err = r.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: BackupJobName(b.Name)}, j)
	switch {
	case apierrors.IsNotFound(err):
		return r.start(ctx, pg, b)
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("read job %s: %w", BackupJobName(b.Name), err)
	case jobFinished(j, batchv1.JobFailed):
		return ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("backup job %s failed: see its pod's log", j.Name))
	case jobFinished(j, batchv1.JobComplete):
		return ctrl.Result{}, r.complete(ctx, pg, b)
	}
	return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
}

func (r *BackupReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func ptrTime(t time.Time) *metav1.Time { m := metav1.NewTime(t); return &m }

// cluster finds the Postgres a Backup is of; a missing cluster or one with
// no backup store fails the Backup for good.
func (r *BackupReconciler) cluster(ctx context.Context, b *v1alpha1.Backup) (*v1alpha1.Postgres, error) {
	pg := &v1alpha1.Postgres{}
	err := r.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.Cluster.Name}, pg)
	if apierrors.IsNotFound(err) {
		return nil, reconcile.TerminalError(fmt.Errorf("postgres %s not found", b.Spec.Cluster.Name))
	}
	if err != nil {
		return nil, fmt.Errorf("read postgres %s: %w", b.Spec.Cluster.Name, err)
	}
	if pg.Spec.Backup == nil {
		return nil, reconcile.TerminalError(fmt.Errorf("postgres %s has no spec.backup", pg.Name))
	}
	return pg, nil
}

// start creates the push Job once the cluster has a ready primary.
func (r *BackupReconciler) start(ctx context.Context, pg *v1alpha1.Postgres, b *v1alpha1.Backup) (ctrl.Result, error) {
	if !primaryReady(pg) {
		b.Status.Phase = v1alpha1.BackupPending
		return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
	}
	o := r.Options
	var primary corev1.Pod
	if err := r.Get(ctx, client.ObjectKey{Namespace: pg.Namespace, Name: pg.Status.Primary}, &primary); err == nil && !podHasTLS(&primary) {
		o.plainPrimary = true
	}
	j := BackupJob(pg, b, o)
	if err := ctrl.SetControllerReference(b, j, r.Scheme); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Create(ctx, j); err != nil && !apierrors.IsAlreadyExists(err) {
		return ctrl.Result{}, fmt.Errorf("create job %s: %w", j.Name, err)
	}
	b.Status.Phase, b.Status.StartedAt = v1alpha1.BackupRunning, ptrTime(r.now())
	if r.Recorder != nil {
		r.Recorder.Eventf(b, nil, corev1.EventTypeNormal, "Started", "Started", "job %s pushes a base backup of %s", j.Name, pg.Status.Primary)
	}
	return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
}

func primaryReady(pg *v1alpha1.Postgres) bool {
	for _, in := range pg.Status.Instances {
		if in.Name == pg.Status.Primary && in.Ready {
			return true
		}
	}
	return false
}

// complete reads the manifest the push wrote (manifestOf) into status, then
// keeps only the newest spec.backup.keep completed Backup objects, as the
// push kept in the store.
func (r *BackupReconciler) complete(ctx context.Context, pg *v1alpha1.Postgres, b *v1alpha1.Backup) error {
	cfg, err := StoreConfig(ctx, r.Client, pg.Namespace, &pg.Spec.Backup.S3)
	if err != nil {
		return err
	}
	store, err := backup.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open backup store %s: %w", cfg, err)
	}
	manifests, _, err := backup.List(ctx, store)
	if err != nil {
		return fmt.Errorf("list backups in %s: %w", cfg, err)
	}
	m := manifestOf(manifests, b)
	if m == nil {
		return reconcile.TerminalError(fmt.Errorf("backup job %s succeeded but %s has no backup labelled %s started after %s", BackupJobName(b.Name), cfg, BackupLabel(b), b.Status.StartedAt))
	}
	b.Status.Phase, b.Status.BackupID = v1alpha1.BackupCompleted, m.ID
	b.Status.StartedAt, b.Status.StoppedAt = ptrTime(m.StartTime), ptrTime(m.StopTime)
	b.Status.BeginLSN, b.Status.EndLSN, b.Status.Timeline = m.StartLSN, m.StopLSN, int64(m.Timeline)
	b.Status.Size = m.CompressedSize
	if r.Recorder != nil {
		r.Recorder.Eventf(b, nil, corev1.EventTypeNormal, "Completed", "Completed", "backup %s: %d bytes, %s..%s", m.ID, m.CompressedSize, m.StartLSN, m.StopLSN)
	}
	return r.retain(ctx, pg, b)
}

// BackupLabel is what a Backup's push Job records in its manifest
// (backup push --label), so the Backup finds its own backup in the store.
func BackupLabel(b *v1alpha1.Backup) string { return b.Namespace + "/" + b.Name }

// manifestOf is the backup b's Job pushed: the oldest labelled for b that
// started no earlier than b did (a Backup deleted and created again under
// the same name labels its pushes alike). A store written by a homeostat
// that did not label falls back to the oldest unlabelled backup started
// since, to the second: the Job starts after b's StartedAt was taken.
func manifestOf(ms []backup.Manifest, b *v1alpha1.Backup) *backup.Manifest {
	since := func(m *backup.Manifest) bool {
		t := b.Status.StartedAt
		return t == nil || !m.StartTime.Before(t.Truncate(time.Second))
	}
	for _, label := range []string{BackupLabel(b), ""} {
		for i := range ms {
			if ms[i].Label == label && since(&ms[i]) {
				return &ms[i]
			}
		}
	}
	return nil
}

// retain deletes completed Backup objects beyond spec.backup.keep, oldest
// first; the push Job already deleted their data with --keep.
func (r *BackupReconciler) retain(ctx context.Context, pg *v1alpha1.Postgres, done *v1alpha1.Backup) error {
	keep := int(pg.Spec.Backup.Keep)
	if keep < 1 {
		return nil
	}
	all, err := ListBackups(ctx, r.Client, pg)
	if err != nil {
		return err
	}
	var completed []*v1alpha1.Backup
	for i := range all {
		if all[i].Name == done.Name {
			completed = append(completed, done)
		} else if all[i].Status.Phase == v1alpha1.BackupCompleted {
			completed = append(completed, &all[i])
		}
	}
	for i := 0; i < len(completed)-keep; i++ {
		if err := r.Delete(ctx, completed[i]); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete backup %s beyond keep %d: %w", completed[i].Name, keep, err)
		}
	}
	return nil
}

// StoreConfig is a backup store's configuration with the credentials read
// from its Secret.
func StoreConfig(ctx context.Context, c client.Reader, namespace string, s *v1alpha1.S3Store) (backup.Config, error) {
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: s.SecretRef.Name}, &sec); err != nil {
		return backup.Config{}, fmt.Errorf("read s3 secret %s: %w", s.SecretRef.Name, err)
	}
	return backup.Config{
		Endpoint: s.Endpoint, Bucket: s.Bucket, Prefix: s.Path, Region: s.Region, Insecure: s.Insecure,
		AccessKey: string(sec.Data["AWS_ACCESS_KEY_ID"]), SecretKey: string(sec.Data["AWS_SECRET_ACCESS_KEY"]),
	}, nil
}

// SetupWithManager watches Backups and their Jobs.
func (r *BackupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Scheme == nil {
		r.Scheme = mgr.GetScheme()
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("backup").
		For(&v1alpha1.Backup{}).
		Owns(&batchv1.Job{}).
		Complete(r)
}
