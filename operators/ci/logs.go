package ci

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/operators/ci/buildlog"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// FinalizerLog holds a Build until its stored log is deleted with it.
const FinalizerLog = "homeostat.dev/build-log"

// Paths and names of the log sidecar.
const (
	logContainer = "homeostat-log"
	logDir       = "/var/log/homeostat"
	logFile      = logDir + "/build.log"
)

// LogStoreConfig is the pipeline's log store with the credentials read
// from its Secret (the keys of a Postgres backup's: AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY).
func LogStoreConfig(ctx context.Context, c client.Reader, p *v1alpha1.Pipeline) (backup.Config, error) {
	s := &p.Spec.Logs.S3
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: s.SecretRef.Name}, &sec); err != nil {
		return backup.Config{}, fmt.Errorf("pipeline %s: log store secret %s: %w", p.Name, s.SecretRef.Name, err)
	}
	return backup.Config{
		Endpoint: s.Endpoint, Bucket: s.Bucket, Prefix: s.Path, Region: s.Region, Insecure: s.Insecure,
		AccessKey: string(sec.Data[backup.EnvAccessKey]), SecretKey: string(sec.Data[backup.EnvSecretKey]),
	}, nil
}

// logURL is where the build's final log will be.
func logURL(p *v1alpha1.Pipeline, b *v1alpha1.Build) string {
	s := &p.Spec.Logs.S3
	return buildlog.URL(backup.Config{Bucket: s.Bucket, Prefix: s.Path}, b.Namespace, b.Name)
}

// logSidecar ships the agent's log to the store. It, not the agent, holds
// the store's credentials: the agent's container runs the repository's
// code, which could otherwise rewrite or delete every build's log.
func logSidecar(b *v1alpha1.Build, p *v1alpha1.Pipeline, o PodOptions) corev1.Container {
	s := &p.Spec.Logs.S3
	always := corev1.ContainerRestartPolicyAlways
	key := func(name string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: s.SecretRef.Name}, Key: name}}
	}
	return corev1.Container{
		Name:  logContainer,
		Image: o.Image,
		Command: []string{imageBinary, "ci", "ship-log", "--file", logFile, "--namespace", b.Namespace, "--build", b.Name,
			"--s3-endpoint", s.Endpoint, "--s3-bucket", s.Bucket, "--s3-prefix", s.Path, "--s3-region", s.Region,
			"--s3-insecure=" + strconv.FormatBool(s.Insecure)},
		Env: []corev1.EnvVar{
			{Name: backup.EnvAccessKey, ValueFrom: key(backup.EnvAccessKey)},
			{Name: backup.EnvSecretKey, ValueFrom: key(backup.EnvSecretKey)},
		},
		RestartPolicy: &always,
		VolumeMounts:  []corev1.VolumeMount{{Name: "log", MountPath: logDir, ReadOnly: true}},
	}
}

// ensureLogFinalizer adds FinalizerLog before a pod can write a log, so the
// log is deleted with the Build and never left behind.
func (r *BuildReconciler) ensureLogFinalizer(ctx context.Context, b *v1alpha1.Build) (bool, error) {
	if controllerutil.ContainsFinalizer(b, FinalizerLog) {
		return false, nil
	}
	patch := client.MergeFrom(b.DeepCopy())
	controllerutil.AddFinalizer(b, FinalizerLog)
	if err := r.Client.Patch(ctx, b, patch); err != nil {
		return false, fmt.Errorf("add finalizer to build %s: %w", b.Name, err)
	}
	return true, nil
}

// release deletes a deleted Build's stored log, then lets the Build go. A
// store that cannot be reached holds the Build (retried); a pipeline that
// is gone leaves no way to reach the store, so the log stays behind.
func (r *BuildReconciler) release(ctx context.Context, b *v1alpha1.Build) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(b, FinalizerLog) {
		return ctrl.Result{}, nil
	}
	p, err := r.pipeline(ctx, b)
	switch {
	case err != nil:
		log.FromContext(ctx).Info("build log left in the store: the pipeline is gone", "build", b.Name, "log", b.Status.LogURL)
	case p.Spec.Logs != nil:
		if err := r.deleteLog(ctx, p, b); err != nil {
			return ctrl.Result{}, err
		}
	}
	patch := client.MergeFrom(b.DeepCopy())
	controllerutil.RemoveFinalizer(b, FinalizerLog)
	if err := r.Client.Patch(ctx, b, patch); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("remove finalizer of build %s: %w", b.Name, err)
	}
	return ctrl.Result{}, nil
}

func (r *BuildReconciler) deleteLog(ctx context.Context, p *v1alpha1.Pipeline, b *v1alpha1.Build) error {
	cfg, err := LogStoreConfig(ctx, r.Client, p)
	if err != nil {
		return err
	}
	store, err := backup.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("delete log of build %s: %w", b.Name, err)
	}
	if err := buildlog.Delete(ctx, store, b.Namespace, b.Name); err != nil {
		return fmt.Errorf("delete log of build %s: %w", b.Name, err)
	}
	return nil
}
