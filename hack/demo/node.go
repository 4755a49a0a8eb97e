package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"homeostat.dev/homeostat/internal/kubelet"
	"homeostat.dev/homeostat/internal/pgtest"
	"homeostat.dev/homeostat/internal/s3test"
	"homeostat.dev/homeostat/operators/postgres"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// demoImage is the homeostat image name the demo's pods use; the stand-in
// kubelet runs bin/homeostat for it.
const demoImage = "homeostat:demo"

// s3Endpoint is where examples/shop/db.yaml sends its backups.
const s3Endpoint = "127.0.0.1:9000"

// startNode starts what a real cluster's nodes and object store would be:
// MinIO on 127.0.0.1:9000, and internal/kubelet — the harness the tests
// use — which runs homeostat's own pods (PostgreSQL instances, backup Jobs,
// CI builds) as local processes with the machine's PostgreSQL binaries, in
// the demo process, together with the Postgres operator (only this process
// knows the local port of each instance). It returns the cleanup.
func (d *demo) startNode(ctx context.Context) (func(), error) {
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	s3, err := s3test.StartOn(s3Endpoint)
	if err != nil {
		return nil, fmt.Errorf("start MinIO on %s (is the port taken?): %w", s3Endpoint, err)
	}
	d.s3 = s3
	stops = append(stops, func() { _ = s3.Stop() })
	fmt.Printf("   MinIO on %s, data in %s\n", s3.Endpoint, s3.Dir)
	dir, err := pgtest.TempDir("homeostat-demo-node-")
	if err != nil {
		stop()
		return nil, err
	}
	stops = append(stops, func() { _ = os.RemoveAll(dir) })
	// Instances reach the API server (their heartbeat) with the demo's kubeconfig,
	// acting as their pods' ServiceAccount.
	kube, err := kubelet.Start(d.c, kubelet.Options{Binary: d.homeostat, HomeostatImage: demoImage, Dir: filepath.Join(dir, "kubelet"),
		Kubeconfig: d.kubeconfig})
	if err != nil {
		stop()
		return nil, err
	}
	stops = append(stops, kube.Stop)
	fmt.Printf("   the stand-in node (internal/kubelet) keeps volumes and container logs in %s\n", filepath.Join(dir, "kubelet"))
	stopOperator, err := d.startPostgresOperator(ctx, kube)
	if err != nil {
		stop()
		return nil, err
	}
	stops = append(stops, stopOperator)
	return stop, nil
}

// startPostgresOperator runs the Postgres and Backup controllers in this
// process, reaching instances through the stand-in kubelet.
func (d *demo) startPostgresOperator(ctx context.Context, kube *kubelet.Kubelet) (func(), error) {
	mgr, err := ctrl.NewManager(d.env.Config, ctrl.Options{Scheme: d.env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return nil, err
	}
	o := postgres.Options{HomeostatImage: demoImage}
	rec := mgr.GetEventRecorder("homeostat-postgres")
	pg := &postgres.PostgresReconciler{Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Recorder: rec, Options: o, Resolve: kube.Resolve}
	if err := pg.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	b := &postgres.BackupReconciler{Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Recorder: rec, Options: o}
	if err := b.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "postgres operator:", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// createS3Secret gives the shop namespace the MinIO credentials that
// examples/shop/db.yaml names (secrets do not belong in git).
func (d *demo) createS3Secret(ctx context.Context) error {
	if err := d.c.Create(ctx, namespace("shop")); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "minio-credentials"},
		StringData: map[string]string{"AWS_ACCESS_KEY_ID": d.s3.AccessKey, "AWS_SECRET_ACCESS_KEY": d.s3.SecretKey}}
	return d.c.Create(ctx, sec)
}

// waitPostgres waits until shopdb has a primary and every instance is ready.
func (d *demo) waitPostgres(ctx context.Context) error {
	fmt.Printf("   waiting for shopdb: initdb, the primary, two replicas cloned from it")
	return d.poll(ctx, 10*time.Minute, func() (bool, error) {
		var pg v1alpha1.Postgres
		if err := d.c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "shopdb"}, &pg); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return pg.Status.Primary != "" && pg.Status.ReadyInstances == pg.Spec.Instances, nil
	})
}

// switchover runs `homeostat pg switchover` as a user would and waits until
// another instance is the primary and every instance is ready again.
func (d *demo) switchover(ctx context.Context) error {
	var pg v1alpha1.Postgres
	if err := d.c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "shopdb"}, &pg); err != nil {
		return err
	}
	old := pg.Status.Primary
	d.show("homeostat pg switchover shopdb -n shop")
	fmt.Printf("   waiting for a replica to take over from %s", old)
	return d.poll(ctx, 5*time.Minute, func() (bool, error) {
		if err := d.c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "shopdb"}, &pg); err != nil {
			return false, err
		}
		return pg.Status.Primary != old && pg.Status.Primary != "" && pg.Status.ReadyInstances == pg.Spec.Instances &&
			pg.Annotations[postgres.AnnotationSwitchover] == "", nil
	})
}

// backupNow asks for a base backup and waits until it is in MinIO.
func (d *demo) backupNow(ctx context.Context) error {
	b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "shopdb-demo"},
		Spec: v1alpha1.BackupSpec{Cluster: v1alpha1.LocalObjectReference{Name: "shopdb"}}}
	if err := d.c.Create(ctx, b); err != nil {
		return err
	}
	fmt.Printf("   Backup shop/shopdb-demo created; waiting for it")
	return d.poll(ctx, 5*time.Minute, func() (bool, error) {
		if err := d.c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return false, err
		}
		if b.Status.Phase == v1alpha1.BackupFailed {
			return false, fmt.Errorf("backup failed: %s", b.Status.Error)
		}
		return b.Status.Phase == v1alpha1.BackupCompleted, nil
	})
}

// poll prints a dot a second until cond holds, fails, or within passes.
func (d *demo) poll(ctx context.Context, within time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ok, err := cond()
		if err != nil {
			fmt.Println()
			return err
		}
		if ok {
			fmt.Println(" done")
			return nil
		}
		fmt.Print(".")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	fmt.Println()
	return fmt.Errorf("not within %s; see %s", within, filepath.Join(d.dir, "controller.log"))
}
