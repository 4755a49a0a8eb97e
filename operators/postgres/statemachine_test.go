package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// newNamespace makes a fresh namespace for one test.
func newNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "pg-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func newReconciler() *PostgresReconciler {
	return &PostgresReconciler{Client: env.Client, Scheme: env.Scheme, Options: Options{HomeostatImage: "homeostat:test"}, Resolve: noPostgres}
}

func createPostgres(t *testing.T, ns string, mutate func(*v1alpha1.Postgres)) *v1alpha1.Postgres {
	t.Helper()
	pg := &v1alpha1.Postgres{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec:       v1alpha1.PostgresSpec{Instances: 2, Synchronous: 1, Storage: v1alpha1.Storage{Size: "1Gi"}, Database: "shop"},
	}
	if mutate != nil {
		mutate(pg)
	}
	if err := env.Client.Create(context.Background(), pg); err != nil {
		t.Fatal(err)
	}
	return pg
}

func reconcileOnce(t *testing.T, r *PostgresReconciler, pg *v1alpha1.Postgres) (ctrl.Result, error) {
	t.Helper()
	return r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(pg)})
}

func get[T client.Object](t *testing.T, obj T, ns, name string) T {
	t.Helper()
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatalf("get %T %s/%s: %v", obj, ns, name, err)
	}
	return obj
}

// completeJob writes a finished Job status, as the Job controller would.
func completeJob(t *testing.T, ns, name string, ok bool) {
	t.Helper()
	j := get(t, &batchv1.Job{}, ns, name)
	now := metav1.Now()
	j.Status.StartTime = &now
	if ok {
		j.Status.Succeeded, j.Status.CompletionTime = 1, &now
		j.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	} else {
		j.Status.Failed = 1
		j.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	}
	if err := env.Client.Status().Update(context.Background(), j); err != nil {
		t.Fatalf("complete job %s: %v", name, err)
	}
}

func TestSecretsAreGeneratedOnceAndNeverOverwritten(t *testing.T) {
	ns := newNamespace(t)
	pg := createPostgres(t, ns, nil)
	r := newReconciler()
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	app := get(t, &corev1.Secret{}, ns, "db-app")
	for _, k := range []string{"username", "password", "host", "port", "dbname", "uri", "jdbc-uri"} {
		if len(app.Data[k]) == 0 {
			t.Errorf("db-app has no %q", k)
		}
	}
	if got, want := string(app.Data["host"]), "db-rw."+ns+".svc"; got != want {
		t.Errorf("host = %q, want %q", got, want)
	}
	if uri := string(app.Data["uri"]); !strings.HasPrefix(uri, "postgresql://shop:") ||
		!strings.HasSuffix(uri, "@db-rw."+ns+".svc:5432/shop?sslmode=verify-full&sslrootcert=%2Fetc%2Fhomeostat%2Fpostgres%2Fdb%2Fca.crt") {
		t.Errorf("uri = %q", uri)
	}
	app.Data["password"] = []byte("chosen-by-a-human")
	if err := env.Client.Update(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	super := get(t, &corev1.Secret{}, ns, "db-superuser")
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	if got := string(get(t, &corev1.Secret{}, ns, "db-app").Data["password"]); got != "chosen-by-a-human" {
		t.Errorf("app password overwritten: %q", got)
	}
	if got := get(t, &corev1.Secret{}, ns, "db-superuser"); string(got.Data["password"]) != string(super.Data["password"]) {
		t.Error("superuser password changed on the second reconcile")
	}
}

// A Postgres applied without render's checks (kubectl) that overrides a
// setting homeostat owns stalls before anything is created.
func TestReservedParameterStalls(t *testing.T) {
	ns := newNamespace(t)
	pg := createPostgres(t, ns, func(pg *v1alpha1.Postgres) {
		pg.Spec.Parameters = map[string]string{"work_mem": "8MB", "primary_conninfo": "host=elsewhere"}
	})
	if _, err := reconcileOnce(t, newReconciler(), pg); err == nil || !isTerminal(err) {
		t.Fatalf("want a terminal error, got %v", err)
	}
	got := get(t, &v1alpha1.Postgres{}, ns, "db")
	st := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionStalled)
	if st == nil || st.Reason != "InvalidSpec" || !strings.Contains(st.Message, "primary_conninfo") {
		t.Fatalf("Stalled condition = %+v, want InvalidSpec naming primary_conninfo", st)
	}
}

func TestMissingS3SecretStallsWithItsName(t *testing.T) {
	ns := newNamespace(t)
	store := startStore(t, "missing-secret")
	pg := createPostgres(t, ns, func(pg *v1alpha1.Postgres) {
		pg.Spec.Backup = &v1alpha1.PostgresBackup{S3: store.spec("s3-creds")}
	})
	_, err := reconcileOnce(t, newReconciler(), pg)
	if err == nil || !isTerminal(err) {
		t.Fatalf("want a terminal error, got %v", err)
	}
	got := get(t, &v1alpha1.Postgres{}, ns, "db")
	st := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionStalled)
	if st == nil || st.Status != metav1.ConditionTrue || st.Reason != "SecretNotFound" || !strings.Contains(st.Message, `"s3-creds"`) {
		t.Fatalf("Stalled condition = %+v, want True naming s3-creds", st)
	}
	if got.Status.Phase != PhaseStalled {
		t.Errorf("phase = %q", got.Status.Phase)
	}
	var pvcs corev1.PersistentVolumeClaimList
	if err := env.Client.List(context.Background(), &pvcs, client.InNamespace(ns)); err != nil || len(pvcs.Items) != 0 {
		t.Errorf("a stalled cluster created volumes: %d, %v", len(pvcs.Items), err)
	}

	// Creating the secret wakes the cluster up (the controller watches
	// secrets and maps them to the clusters that name them) and unstalls it.
	r := newReconciler()
	sec := store.secret(ns, "s3-creds")
	if reqs := r.postgresForSecret(context.Background(), sec); len(reqs) != 1 || reqs[0].Name != "db" {
		t.Errorf("secret maps to %v, want the Postgres db", reqs)
	}
	if err := env.Client.Create(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	got = get(t, &v1alpha1.Postgres{}, ns, "db")
	if meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionStalled) || got.Status.Phase != PhaseBootstrapping {
		t.Errorf("after the secret appeared: phase %s, conditions %+v", got.Status.Phase, got.Status.Conditions)
	}
}

func TestBootstrapCreatesVolumeThenInitJobThenPrimaryPod(t *testing.T) {
	ns := newNamespace(t)
	pg := createPostgres(t, ns, nil)
	r := newReconciler()
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	pvc := get(t, &corev1.PersistentVolumeClaim{}, ns, "db-1")
	if pvc.OwnerReferences != nil {
		t.Error("volume claims must not be owned: they outlive the Postgres")
	}
	j := get(t, &batchv1.Job{}, ns, "db-1-init")
	if args := strings.Join(j.Spec.Template.Spec.Containers[0].Command, " "); !strings.Contains(args, "instance init") {
		t.Errorf("init job runs %q", args)
	}
	got := get(t, &v1alpha1.Postgres{}, ns, "db")
	if got.Status.Phase != PhaseBootstrapping || got.Status.Primary != "" {
		t.Errorf("status = %q primary %q, want Bootstrapping without primary", got.Status.Phase, got.Status.Primary)
	}
	if !meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReconciling) {
		t.Error("Reconciling is not True while bootstrapping")
	}

	// A failed init Job is retried from a clean volume.
	completeJob(t, ns, "db-1-init", false)
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	var jobs batchv1.JobList
	_ = env.Client.List(context.Background(), &jobs, client.InNamespace(ns))
	for _, j := range jobs.Items {
		if j.DeletionTimestamp.IsZero() && j.Name == "db-1-init" {
			t.Error("failed init job was not removed")
		}
	}

	// The API server keeps deleted objects with finalizers (no GC here):
	// clear them so the retry can create the objects again.
	waitGone(t, &batchv1.Job{}, ns, "db-1-init")
	waitGone(t, &corev1.PersistentVolumeClaim{}, ns, "db-1")
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	completeJob(t, ns, "db-1-init", true)
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	got = get(t, &v1alpha1.Postgres{}, ns, "db")
	if got.Status.Primary != "db-1" {
		t.Fatalf("primary = %q after the init job succeeded", got.Status.Primary)
	}
	pod := get(t, &corev1.Pod{}, ns, "db-1")
	if pod.Labels[LabelRole] != RolePrimary {
		t.Errorf("primary pod role label = %q", pod.Labels[LabelRole])
	}
	if get(t, &corev1.PersistentVolumeClaim{}, ns, "db-1").Annotations[AnnotationPVCStatus] != pvcReady {
		t.Error("volume not marked ready")
	}
	for _, s := range []string{"db-rw", "db-ro"} {
		svc := get(t, &corev1.Service{}, ns, s)
		if svc.Spec.Selector[LabelCluster] != "db" {
			t.Errorf("service %s selects %v", s, svc.Spec.Selector)
		}
	}
}

// waitGone removes finalizers from a deleted object and waits until it is gone.
func waitGone(t *testing.T, obj client.Object, ns, name string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
		if apierrors.IsNotFound(err) {
			return
		}
		if err == nil && len(obj.GetFinalizers()) > 0 {
			obj.SetFinalizers(nil)
			_ = env.Client.Update(ctx, obj)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s/%s still exists", ns, name)
}

func TestDeletionKeepsVolumesUnlessPolicyIsDelete(t *testing.T) {
	for _, policy := range []string{"Retain", "Delete"} {
		t.Run(policy, func(t *testing.T) {
			ns := newNamespace(t)
			pg := createPostgres(t, ns, func(pg *v1alpha1.Postgres) { pg.Spec.DeletionPolicy = policy })
			r := newReconciler()
			if _, err := reconcileOnce(t, r, pg); err != nil {
				t.Fatal(err)
			}
			got := get(t, &v1alpha1.Postgres{}, ns, "db")
			if len(got.Finalizers) == 0 {
				t.Fatal("no finalizer")
			}
			if err := env.Client.Delete(context.Background(), got); err != nil {
				t.Fatal(err)
			}
			if _, err := reconcileOnce(t, r, pg); err != nil {
				t.Fatal(err)
			}
			waitGone(t, &v1alpha1.Postgres{}, ns, "db")
			var pvc corev1.PersistentVolumeClaim
			err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "db-1"}, &pvc)
			kept := err == nil && pvc.DeletionTimestamp.IsZero()
			if kept != (policy == "Retain") {
				t.Errorf("policy %s: volume kept = %v (%v)", policy, kept, err)
			}
			var jobs batchv1.JobList
			_ = env.Client.List(context.Background(), &jobs, client.InNamespace(ns))
			for _, j := range jobs.Items {
				if j.DeletionTimestamp.IsZero() {
					t.Errorf("job %s survived its Postgres", j.Name)
				}
			}
		})
	}
}

func TestScheduleCreatesOneBackupPerDueRun(t *testing.T) {
	ns := newNamespace(t)
	store := startStore(t, "schedule")
	if err := env.Client.Create(context.Background(), store.secret(ns, "s3")); err != nil {
		t.Fatal(err)
	}
	pg := createPostgres(t, ns, func(pg *v1alpha1.Postgres) {
		pg.Spec.Backup = &v1alpha1.PostgresBackup{Schedule: "@every 1h", S3: store.spec("s3")}
	})
	created := get(t, &v1alpha1.Postgres{}, ns, "db").CreationTimestamp.Time
	r := newReconciler()
	count := func() int {
		var l v1alpha1.BackupList
		if err := env.Client.List(context.Background(), &l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		return len(l.Items)
	}
	for _, step := range []struct {
		at   time.Duration
		want int
	}{{10 * time.Minute, 0}, {61 * time.Minute, 1}, {70 * time.Minute, 1}, {5 * time.Hour, 2}} {
		r.Now = func() time.Time { return created.Add(step.at) }
		res, err := reconcileOnce(t, r, pg)
		if err != nil {
			t.Fatal(err)
		}
		if got := count(); got != step.want {
			t.Errorf("at +%s: %d backups, want %d", step.at, got, step.want)
		}
		if res.RequeueAfter <= 0 || res.RequeueAfter > time.Hour {
			t.Errorf("at +%s: requeue after %s", step.at, res.RequeueAfter)
		}
	}
}

func TestBackupOfMissingClusterFails(t *testing.T) {
	ns := newNamespace(t)
	b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "b1", Namespace: ns}, Spec: v1alpha1.BackupSpec{Cluster: v1alpha1.LocalObjectReference{Name: "nope"}}}
	if err := env.Client.Create(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	r := &BackupReconciler{Client: env.Client, Scheme: env.Scheme}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(b)}); err != nil {
		t.Fatalf("a terminal failure is recorded, not returned: %v", err)
	}
	got := get(t, &v1alpha1.Backup{}, ns, "b1")
	if got.Status.Phase != v1alpha1.BackupFailed || !strings.Contains(got.Status.Error, "nope") {
		t.Errorf("status = %+v", got.Status)
	}
}

func TestBackupWaitsForAReadyPrimaryThenStartsItsJob(t *testing.T) {
	ns := newNamespace(t)
	pg := createPostgres(t, ns, func(pg *v1alpha1.Postgres) {
		pg.Spec.Backup = &v1alpha1.PostgresBackup{Keep: 2, S3: v1alpha1.S3Store{Endpoint: "127.0.0.1:9", Bucket: "b", SecretRef: v1alpha1.LocalObjectReference{Name: "s3"}}}
	})
	b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "b1", Namespace: ns}, Spec: v1alpha1.BackupSpec{Cluster: v1alpha1.LocalObjectReference{Name: "db"}}}
	if err := env.Client.Create(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	r := &BackupReconciler{Client: env.Client, Scheme: env.Scheme, Options: Options{HomeostatImage: "homeostat:test"}}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(b)}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := get(t, &v1alpha1.Backup{}, ns, "b1"); got.Status.Phase != v1alpha1.BackupPending {
		t.Fatalf("phase = %q without a primary, want Pending", got.Status.Phase)
	}
	cur := get(t, &v1alpha1.Postgres{}, ns, pg.Name)
	cur.Status.Primary = "db-1"
	cur.Status.Instances = []v1alpha1.InstanceStatus{{Name: "db-1", Role: RolePrimary, Ready: true}}
	if err := env.Client.Status().Update(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	got := get(t, &v1alpha1.Backup{}, ns, "b1")
	if got.Status.Phase != v1alpha1.BackupRunning || got.Status.StartedAt == nil {
		t.Fatalf("status = %+v, want Running with startedAt", got.Status)
	}
	j := get(t, &batchv1.Job{}, ns, BackupJobName("b1"))
	cmd := strings.Join(j.Spec.Template.Spec.Containers[0].Command, " ")
	if !strings.Contains(cmd, "backup push --host db-rw") || !strings.Contains(cmd, "--keep 2") {
		t.Errorf("backup job runs %q", cmd)
	}
	completeJob(t, ns, j.Name, false)
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := get(t, &v1alpha1.Backup{}, ns, "b1"); got.Status.Phase != v1alpha1.BackupFailed {
		t.Errorf("phase = %q after the job failed", got.Status.Phase)
	}
}
