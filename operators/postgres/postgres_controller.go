package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"homeostat.dev/homeostat/operators/instance"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// ConditionPrimaryAvailable is False while the primary cannot be reached;
// its lastTransitionTime starts the failover delay.
const ConditionPrimaryAvailable = "PrimaryAvailable"

// ReasonAuthenticationFailed is the phase, PrimaryAvailable reason and
// event of a primary that refuses the operator's superuser password.
const ReasonAuthenticationFailed = "AuthenticationFailed"

// Phases of a Postgres, in status.phase.
const (
	PhaseBootstrapping   = "Bootstrapping"
	PhaseCreatingReplica = "CreatingReplica"
	PhaseScalingDown     = "ScalingDown"
	PhaseFailingOver     = "FailingOver"
	PhaseSwitchingOver   = "SwitchingOver"
	PhaseWaiting         = "WaitingForInstances"
	PhaseHealthy         = "Healthy"
	PhaseStalled         = "Stalled"
	PhaseDeleting        = "Deleting"
)

// PostgresReconciler runs the Postgres workflow: secrets, services, bootstrap
// (initdb or restore), replicas, failover and switchover, scaling,
// synchronous replication and the backup schedule.
type PostgresReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	Options  Options
	// APIReader reads past the cache (the manager's when nil after
	// SetupWithManager; the client otherwise): a switchover's request is
	// checked against the API server before a primary is stopped.
	APIReader client.Reader
	// Resolve finds an instance's or a Service's PostgreSQL (KubeResolver
	// when nil).
	Resolve Resolver
	// Now is the clock (time.Now when nil); Rand the password source.
	Now  func() time.Time
	Rand io.Reader
	// Poll is how often an unsettled cluster is looked at again (5s when 0).
	Poll time.Duration
	// StuckAfter is how long a running replica may stream nothing before it
	// is cloned afresh (2m when 0).
	StuckAfter time.Duration
	// ServerCertLifetime and CALifetime are how long the certificates the
	// operator issues itself are valid (DefaultServerCertLifetime and
	// DefaultCALifetime when 0); the server certificate is renewed once a
	// third of it is left.
	ServerCertLifetime, CALifetime time.Duration

	mu sync.Mutex
	// notStreaming is when each replica was first seen not streaming.
	notStreaming map[string]time.Time
	// seen is when each instance was last seen alive (see noteSeen).
	seen map[string]sighting
}

// errWait ends a reconcile early without an error: the cluster is moving
// and the next reconcile (on a watch event or after Poll) goes on.
var errWait = errors.New("waiting")

// cluster is one reconcile's working state, passed along the steps.
type cluster struct {
	pg        *v1alpha1.Postgres
	pvcs      map[string]*corev1.PersistentVolumeClaim
	pods      map[string]*corev1.Pod
	jobs      map[string]*batchv1.Job
	obs       map[string]Observation
	maxSerial int
	password  string // the superuser's, to observe and promote
	ca        []byte // the CA instances' certificates are verified against
	phase     string
	message   string
	requeue   time.Duration
	backups   []v1alpha1.Backup
	// nextBackup is when the schedule asks for the next backup.
	nextBackup time.Time
	// conns are this reconcile's connections, one per instance (see conn).
	conns map[string]*instanceConn
	// secretVersions are the credential secrets' resourceVersions, by kind.
	secretVersions map[string]string
}

// step is one named stage of the workflow; a step returns errWait (through
// wait) when the cluster must settle before the next steps make sense.
type step struct {
	name string
	run  func(context.Context, *cluster) error
}

// steps is the workflow, in order.
func (r *PostgresReconciler) steps() []step {
	return []step{
		{"ValidateSpec", r.validate},
		{"EnsureSecrets", r.ensureSecrets},
		{"EnsureTLS", r.ensureTLS},
		{"EnsureServices", r.ensureServices},
		{"EnsureDisruptionBudgets", r.ensureDisruptionBudgets},
		{"Observe", r.observe},
		// Before any Job or pod: they run as the cluster's ServiceAccount.
		{"EnsureAccess", r.ensureAccess},
		{"CheckArchiving", r.checkArchiving},
		// Backups are asked for on time even while the cluster settles;
		// each Backup waits for a ready primary itself.
		{"ScheduleBackups", r.scheduleBackups},
		{"Bootstrap", r.bootstrap},
		{"Failover", r.failover},
		{"SyncPasswords", r.syncPasswords},
		{"ApplyParameters", r.applyParameters},
		{"EnsurePods", r.ensurePods},
		{"ScaleReplicas", r.scaleReplicas},
		{"SyncReplication", r.syncReplication},
		{"RollingUpdate", r.rollingUpdate},
	}
}

// Reconcile moves one Postgres through its workflow and writes its status
// once, however the steps ended.
func (r *PostgresReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	pg := &v1alpha1.Postgres{}
	if err := r.Get(ctx, req.NamespacedName, pg); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !pg.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, pg)
	}
	if !controllerutil.ContainsFinalizer(pg, FinalizerName) {
		controllerutil.AddFinalizer(pg, FinalizerName)
		if err := r.Update(ctx, pg); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}
	c := &cluster{pg: pg, requeue: r.poll(), secretVersions: map[string]string{}}
	defer c.closeConns()
	orig := pg.DeepCopy()
	defer func() {
		stepErr := retErr
		if errors.Is(stepErr, errWait) {
			stepErr = nil
		}
		r.finalizeStatus(c, stepErr)
		if err := r.Status().Patch(ctx, pg, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
			retErr = errors.Join(stepErr, fmt.Errorf("patch status: %w", err))
			return
		}
		retErr = stepErr
		if retErr == nil || !isTerminal(retErr) {
			res = ctrl.Result{RequeueAfter: c.requeue}
		}
	}()
	for _, s := range r.steps() {
		if err := s.run(ctx, c); err != nil {
			if !errors.Is(err, errWait) {
				log.FromContext(ctx).Info("step failed", "step", s.name, "error", err.Error())
				err = fmt.Errorf("%s: %w", s.name, err)
			}
			return ctrl.Result{}, err
		}
	}
	c.phase = PhaseHealthy
	if ready(c) < instances(pg) {
		c.phase, c.message = PhaseWaiting, fmt.Sprintf("%d of %d instances ready", ready(c), instances(pg))
	} else {
		c.requeue = 30 * time.Second
	}
	return ctrl.Result{}, nil
}

func isTerminal(err error) bool { return errors.Is(err, reconcile.TerminalError(nil)) }

func (r *PostgresReconciler) poll() time.Duration {
	if r.Poll > 0 {
		return r.Poll
	}
	return 5 * time.Second
}

func (r *PostgresReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// wait records what the workflow waits for and stops this reconcile.
func (c *cluster) wait(phase, format string, args ...any) error {
	c.phase, c.message = phase, fmt.Sprintf(format, args...)
	return errWait
}

// event records a normal event on the Postgres.
func (r *PostgresReconciler) event(pg *v1alpha1.Postgres, reason, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(pg, nil, corev1.EventTypeNormal, reason, reason, format, args...)
	}
}

// warn records a warning event on the Postgres: something a human must fix.
func (r *PostgresReconciler) warn(pg *v1alpha1.Postgres, reason, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(pg, nil, corev1.EventTypeWarning, reason, reason, format, args...)
	}
}

// validate stops the workflow on configuration a human must fix; the
// missing S3 secret is named so the message says what to create.
func (r *PostgresReconciler) validate(ctx context.Context, c *cluster) error {
	for k := range c.pg.Spec.Parameters {
		if v1alpha1.ReservedParameter(k) {
			return reconcile.TerminalError(&stalled{"InvalidSpec", fmt.Errorf("spec.parameters.%s is set by homeostat and cannot be overridden", k)})
		}
	}
	if m := v1alpha1.ImageMajor(c.pg.Spec.Image); m != "" && m != c.pg.Spec.Version {
		return reconcile.TerminalError(&stalled{ReasonImageVersionMismatch, fmt.Errorf("spec.image %q is PostgreSQL %s by its tag but spec.version is %q: the data directory needs binaries of its own major version",
			c.pg.Spec.Image, m, c.pg.Spec.Version)})
	}
	stores := []*v1alpha1.S3Store{}
	if b := c.pg.Spec.Backup; b != nil {
		stores = append(stores, &b.S3)
		if b.Schedule != "" {
			if _, err := parseSchedule(b.Schedule); err != nil {
				return reconcile.TerminalError(fmt.Errorf("spec.backup.schedule %q: %w", b.Schedule, err))
			}
		}
	}
	if bs := c.pg.Spec.Bootstrap; bs != nil && bs.FromBackup != nil {
		stores = append(stores, &bs.FromBackup.S3)
	}
	for _, s := range stores {
		var sec corev1.Secret
		err := r.Get(ctx, client.ObjectKey{Namespace: c.pg.Namespace, Name: s.SecretRef.Name}, &sec)
		if apierrors.IsNotFound(err) {
			return reconcile.TerminalError(&stalled{"SecretNotFound", fmt.Errorf("s3 secret %q not found in namespace %s", s.SecretRef.Name, c.pg.Namespace)})
		}
		if err != nil {
			return fmt.Errorf("read s3 secret %s: %w", s.SecretRef.Name, err)
		}
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
			if len(sec.Data[k]) == 0 {
				return reconcile.TerminalError(&stalled{"SecretInvalid", fmt.Errorf("s3 secret %q has no key %s", s.SecretRef.Name, k)})
			}
		}
	}
	return nil
}

// ensureSecrets creates the credential secrets that do not exist yet and
// never touches existing ones: the passwords are in the data directory.
func (r *PostgresReconciler) ensureSecrets(ctx context.Context, c *cluster) error {
	for _, kind := range secretKinds {
		var existing corev1.Secret
		err := r.Get(ctx, client.ObjectKey{Namespace: c.pg.Namespace, Name: SecretName(c.pg.Name, kind)}, &existing)
		if err == nil {
			if kind == SecretSuperuser {
				c.password = string(existing.Data["password"])
			}
			c.secretVersions[kind] = existing.ResourceVersion
			continue
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("read secret %s: %w", SecretName(c.pg.Name, kind), err)
		}
		creds, err := NewCredentials(c.pg, kind, r.Rand)
		if err != nil {
			return err
		}
		s := CredentialSecret(c.pg, kind, creds)
		if err := r.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create secret %s: %w", s.Name, err)
		}
		if kind == SecretSuperuser {
			c.password = creds.Password
		}
		c.secretVersions[kind] = s.ResourceVersion
		r.event(c.pg, "SecretCreated", "created secret %s", s.Name)
	}
	return nil
}

// ensureServices creates NAME-rw and NAME-ro, owned by the Postgres.
func (r *PostgresReconciler) ensureServices(ctx context.Context, c *cluster) error {
	for _, svc := range Services(c.pg) {
		if err := r.createOwned(ctx, c.pg, svc); err != nil {
			return err
		}
	}
	return nil
}

// createOwned creates obj with the Postgres as controller owner; an existing
// object is left alone.
func (r *PostgresReconciler) createOwned(ctx context.Context, owner client.Object, obj client.Object) error {
	if err := controllerutil.SetControllerReference(owner, obj, r.Scheme); err != nil {
		return err
	}
	if err := r.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
	}
	return nil
}

// observe lists the cluster's volumes, pods and jobs and asks every running
// instance about itself.
func (r *PostgresReconciler) observe(ctx context.Context, c *cluster) error {
	sel := client.MatchingLabels{LabelCluster: c.pg.Name}
	ns := client.InNamespace(c.pg.Namespace)
	var pvcs corev1.PersistentVolumeClaimList
	var pods corev1.PodList
	var jobs batchv1.JobList
	for _, l := range []client.ObjectList{&pvcs, &pods, &jobs} {
		if err := r.List(ctx, l, ns, sel); err != nil {
			return fmt.Errorf("list %T: %w", l, err)
		}
	}
	c.pvcs, c.pods, c.jobs, c.obs = map[string]*corev1.PersistentVolumeClaim{}, map[string]*corev1.Pod{}, map[string]*batchv1.Job{}, map[string]Observation{}
	for i := range pvcs.Items {
		p := &pvcs.Items[i]
		if n, _ := strconv.Atoi(p.Annotations[AnnotationSerial]); n > c.maxSerial {
			c.maxSerial = n
		}
		if p.DeletionTimestamp.IsZero() {
			c.pvcs[p.Name] = p
		}
	}
	for i := range pods.Items {
		c.pods[pods.Items[i].Name] = &pods.Items[i]
	}
	for i := range jobs.Items {
		c.jobs[jobs.Items[i].Name] = &jobs.Items[i]
	}
	for name, pod := range c.pods {
		if !podRunning(pod) {
			continue
		}
		db, addr, err := r.conn(ctx, c, name)
		if err != nil {
			c.obs[name] = Observation{Err: err}
			continue
		}
		c.obs[name] = observeInstance(ctx, db, addr)
	}
	for name, pod := range c.pods {
		r.noteSeen(c.pg.Namespace, name, c.obs[name].Reachable, pod.Annotations[AnnotationHeartbeat])
	}
	r.adoptPrimary(c)
	var err error
	c.backups, err = r.backupsOf(ctx, c.pg)
	return err
}

func (r *PostgresReconciler) resolver() Resolver {
	if r.Resolve != nil {
		return r.Resolve
	}
	return KubeResolver(r.Client)
}

// adoptPrimary takes the one instance that runs as a primary as the cluster's
// primary when the recorded one is gone: after a promotion whose status
// patch was lost, or for volumes retained from a deleted Postgres.
func (r *PostgresReconciler) adoptPrimary(c *cluster) {
	if o, ok := c.obs[c.pg.Status.Primary]; ok && o.Reachable && !o.InRecovery {
		return
	}
	var primaries []string
	for name, o := range c.obs {
		if o.Reachable && !o.InRecovery && c.pvcs[name] != nil {
			primaries = append(primaries, name)
		}
	}
	if len(primaries) == 1 && primaries[0] != c.pg.Status.Primary {
		c.pg.Status.Primary = primaries[0]
	}
}

// bootstrap creates the first instance: its volume, then the init (or
// restore) Job that fills it. The primary's pod comes in EnsurePods.
func (r *PostgresReconciler) bootstrap(ctx context.Context, c *cluster) error {
	if c.pg.Status.Primary != "" {
		return nil
	}
	if len(readyPVCs(c)) > 0 {
		// Retained volumes: their pods start as replicas and the one that
		// is not in recovery is adopted as primary.
		return nil
	}
	inst := InstanceName(c.pg.Name, 1)
	if c.pvcs[inst] == nil {
		if err := r.checkArchiveEmpty(ctx, c); err != nil {
			return err
		}
	}
	kind, build := JobInit, InitJob
	if bs := c.pg.Spec.Bootstrap; bs != nil && bs.FromBackup != nil {
		kind, build = JobRestore, RestoreJob
	}
	done, err := r.fillVolume(ctx, c, inst, 1, kind, build(c.pg, inst, r.Options))
	if err != nil || !done {
		return errors.Join(err, c.wait(PhaseBootstrapping, "%s job of %s running", kind, inst))
	}
	c.pg.Status.Primary = inst
	r.event(c.pg, "Bootstrapped", "%s filled by its %s job", inst, kind)
	return nil
}

// fillVolume drives an instance's volume through the Job that fills it:
// create the claim, run the Job, mark the claim ready when it succeeded. A
// failed Job is removed with the claim, so the next reconcile starts clean.
func (r *PostgresReconciler) fillVolume(ctx context.Context, c *cluster, inst string, serial int, kind string, j *batchv1.Job) (bool, error) {
	pvc := c.pvcs[inst]
	if pvc == nil {
		pvc = PVC(c.pg, inst, serial)
		if err := r.Create(ctx, pvc); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("create volume claim %s: %w", inst, err)
		}
		c.pvcs[inst] = pvc
	}
	if pvc.Annotations[AnnotationPVCStatus] == pvcReady {
		return true, nil
	}
	cur := c.jobs[j.Name]
	switch {
	case cur == nil:
		return false, r.createOwned(ctx, c.pg, j)
	case jobFinished(cur, batchv1.JobFailed):
		r.event(c.pg, "JobFailed", "%s job %s failed; retrying", kind, cur.Name)
		if err := r.Delete(ctx, cur, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return false, err
		}
		return false, client.IgnoreNotFound(r.Delete(ctx, pvc))
	case jobFinished(cur, batchv1.JobComplete):
		patch := client.MergeFrom(pvc.DeepCopy())
		pvc.Annotations[AnnotationPVCStatus] = pvcReady
		if err := r.Patch(ctx, pvc, patch); err != nil {
			return false, fmt.Errorf("mark volume claim %s ready: %w", inst, err)
		}
		return true, client.IgnoreNotFound(r.Delete(ctx, cur, client.PropagationPolicy(metav1.DeletePropagationBackground)))
	}
	return false, nil
}

// ensurePods gives every filled volume its pod, labelled with its role, and
// replaces failed replica pods. A lost primary's pod is not recreated while a
// replica could take over: that is Failover's decision.
func (r *PostgresReconciler) ensurePods(ctx context.Context, c *cluster) error {
	for _, name := range readyPVCs(c) {
		role := RoleReplica
		if name == c.pg.Status.Primary {
			role = RolePrimary
		}
		if err := r.refusedImage(ctx, c, name); err != nil {
			return err
		}
		pod := c.pods[name]
		switch {
		case pod == nil:
			p := InstancePod(c.pg, name, role, r.Options)
			p.Annotations = withLabels(p.Annotations, AnnotationSpecHash, SpecHash(c.pg, r.Options))
			if err := r.createOwned(ctx, c.pg, p); err != nil {
				return err
			}
			c.pods[name] = p
		case !pod.DeletionTimestamp.IsZero():
		case podFailed(pod) && role == RoleReplica && rewindFailed(pod):
			r.warn(c.pg, "RewindFailed", "%s could not be rewound to follow %s (%s); cloning it afresh", name, c.pg.Status.Primary, pod.Status.Message)
			return r.removeInstance(ctx, c, name, PhaseCreatingReplica)
		case podFailed(pod) && role == RoleReplica:
			if err := r.Delete(ctx, pod); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("delete failed pod %s: %w", name, err)
			}
		case pod.Labels[LabelRole] != role:
			if err := r.setRole(ctx, pod, role); err != nil {
				return err
			}
		}
	}
	return nil
}

// setRole relabels a pod, which repoints the Services.
func (r *PostgresReconciler) setRole(ctx context.Context, pod *corev1.Pod, role string) error {
	patch := client.MergeFrom(pod.DeepCopy())
	pod.Labels[LabelRole] = role
	if err := r.Patch(ctx, pod, patch); err != nil {
		return fmt.Errorf("label pod %s %s: %w", pod.Name, role, err)
	}
	return nil
}

// scaleReplicas adds one replica at a time (volume, join Job, then its pod
// through EnsurePods) or removes the newest replica, never the primary.
func (r *PostgresReconciler) scaleReplicas(ctx context.Context, c *cluster) error {
	members := make([]string, 0, len(c.pvcs))
	for name := range c.pvcs {
		members = append(members, name)
	}
	sort.Slice(members, func(i, j int) bool {
		return instanceSerial(c.pg.Name, members[i]) < instanceSerial(c.pg.Name, members[j])
	})
	want := instances(c.pg)
	for _, name := range members {
		if c.pvcs[name].Annotations[AnnotationPVCStatus] != pvcReady {
			return r.join(ctx, c, name, instanceSerial(c.pg.Name, name))
		}
	}
	switch {
	case len(members) < want:
		return r.join(ctx, c, InstanceName(c.pg.Name, c.maxSerial+1), c.maxSerial+1)
	case len(members) > want:
		for i := len(members) - 1; i >= 0; i-- {
			if members[i] != c.pg.Status.Primary {
				return r.removeInstance(ctx, c, members[i], PhaseScalingDown)
			}
		}
	}
	return nil
}

// join clones a new replica once the primary answers.
func (r *PostgresReconciler) join(ctx context.Context, c *cluster, inst string, serial int) error {
	if o := c.obs[c.pg.Status.Primary]; !o.Reachable || o.InRecovery {
		return c.wait(PhaseCreatingReplica, "waiting for primary %s before adding %s", c.pg.Status.Primary, inst)
	}
	// The Job clones through NAME-rw, which reaches the primary once its
	// pod is Ready (its readiness probe passed), a moment after it answers.
	if pod := c.pods[c.pg.Status.Primary]; c.jobs[JobName(inst, JobJoin)] == nil && (pod == nil || !podReady(pod)) {
		return c.wait(PhaseCreatingReplica, "waiting for primary %s to be ready before adding %s", c.pg.Status.Primary, inst)
	}
	done, err := r.fillVolume(ctx, c, inst, serial, JobJoin, JoinJob(c.pg, inst, r.optionsFor(c)))
	if err != nil || !done {
		return errors.Join(err, c.wait(PhaseCreatingReplica, "join job of %s running", inst))
	}
	r.event(c.pg, "ReplicaCreated", "replica %s cloned from %s", inst, c.pg.Status.Primary)
	return nil
}

// removeInstance deletes an instance's pod, jobs and volume.
func (r *PostgresReconciler) removeInstance(ctx context.Context, c *cluster, inst, phase string) error {
	bg := client.PropagationPolicy(metav1.DeletePropagationBackground)
	if pod := c.pods[inst]; pod != nil {
		if err := r.Delete(ctx, pod); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete pod %s: %w", inst, err)
		}
	}
	for _, kind := range []string{JobInit, JobJoin, JobRestore} {
		if j := c.jobs[JobName(inst, kind)]; j != nil {
			if err := r.Delete(ctx, j, bg); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("delete job %s: %w", j.Name, err)
			}
		}
	}
	if pvc := c.pvcs[inst]; pvc != nil {
		if err := r.Delete(ctx, pvc); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete volume claim %s: %w", inst, err)
		}
		delete(c.pvcs, inst)
	}
	r.event(c.pg, "InstanceRemoved", "removed instance %s", inst)
	return c.wait(phase, "removing instance %s", inst)
}

// syncReplication keeps the primary in step with its replicas: a physical
// replication slot for each (a promoted replica has none of its old
// primary's), none for instances that are gone, and synchronous_standby_names
// following spec.synchronous.
func (r *PostgresReconciler) syncReplication(ctx context.Context, c *cluster) error {
	o := c.obs[c.pg.Status.Primary]
	if !o.Reachable || o.InRecovery {
		return nil
	}
	var replicas, slots []string
	for _, name := range readyPVCs(c) {
		if name != c.pg.Status.Primary {
			replicas = append(replicas, name)
			slots = append(slots, instance.SlotName(name))
		}
	}
	db, addr, err := r.conn(ctx, c, c.pg.Status.Primary)
	if err != nil {
		return err
	}
	// Slots of instances still being cloned belong to their join Job.
	var keep []string
	for name := range c.pvcs {
		keep = append(keep, instance.SlotName(name))
	}
	active, created, dropped, err := syncSlotsOn(ctx, db, addr, instance.SlotName(c.pg.Name+"-"), slots, keep)
	if err != nil {
		return err
	}
	if err := r.syncReplicaSlots(ctx, c); err != nil {
		log.FromContext(ctx).Info("replica slots not synced", "error", err.Error())
	}
	if err := r.recloneStuckReplicas(ctx, c, replicas, active); err != nil {
		return err
	}
	if len(created)+len(dropped) > 0 {
		r.event(c.pg, "ReplicationSlotsSynced", "created %v, dropped %v", created, dropped)
	}
	want := SynchronousStandbyNames(int(c.pg.Spec.Synchronous), replicas)
	if o.SyncStandbyNames == want {
		return nil
	}
	if err := setSyncStandbyNamesOn(ctx, db, addr, want); err != nil {
		return err
	}
	r.event(c.pg, "SynchronousStandbysSet", "synchronous_standby_names = %q", want)
	return nil
}

// recloneStuckReplicas replaces a replica that runs but has not streamed
// from the primary for StuckAfter: after a promotion a replica that had
// replayed past the new primary's fork point can never follow it, and with
// synchronous replication a silent replica weakens every commit. One at a
// time, and only while the primary is healthy.
func (r *PostgresReconciler) recloneStuckReplicas(ctx context.Context, c *cluster, replicas []string, active map[string]bool) error {
	r.mu.Lock()
	if r.notStreaming == nil {
		r.notStreaming = map[string]time.Time{}
	}
	stuck := ""
	now := r.now()
	for _, name := range replicas {
		key := c.pg.Namespace + "/" + name
		o, pod := c.obs[name], c.pods[name]
		if active[instance.SlotName(name)] || pod == nil || !podRunning(pod) || !o.Reachable {
			delete(r.notStreaming, key)
			continue
		}
		since, seen := r.notStreaming[key]
		if !seen {
			r.notStreaming[key] = now
			continue
		}
		if now.Sub(since) > r.stuckAfter() && stuck == "" {
			stuck = name
			delete(r.notStreaming, key)
		}
	}
	r.mu.Unlock()
	if stuck == "" {
		return nil
	}
	r.event(c.pg, "ReplicaStuck", "%s has not streamed from %s for %s; cloning it afresh", stuck, c.pg.Status.Primary, r.stuckAfter())
	return r.removeInstance(ctx, c, stuck, PhaseCreatingReplica)
}

func (r *PostgresReconciler) stuckAfter() time.Duration {
	if r.StuckAfter > 0 {
		return r.StuckAfter
	}
	return 2 * time.Minute
}

// readyPVCs are the instances whose volumes are filled, by serial.
func readyPVCs(c *cluster) []string {
	var out []string
	for name, p := range c.pvcs {
		if p.Annotations[AnnotationPVCStatus] == pvcReady {
			out = append(out, name)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return instanceSerial(c.pg.Name, out[i]) < instanceSerial(c.pg.Name, out[j])
	})
	return out
}

func ready(c *cluster) int {
	n := 0
	for name := range c.obs {
		if c.pvcs[name] != nil && instanceReady(c, name) {
			n++
		}
	}
	return n
}

// instanceReady tells the truth about an instance: a primary is ready when
// it accepts writes with the synchronous standbys spec.synchronous asks for
// (else its commits wait), a replica when it streams from the current
// primary (else it could not be promoted without loss, nor serve fresh
// reads).
func instanceReady(c *cluster, name string) bool {
	o := c.obs[name]
	if !o.Reachable {
		return false
	}
	primary := c.obs[c.pg.Status.Primary]
	if name != c.pg.Status.Primary {
		return o.InRecovery && primary.Reachable && primary.Standbys[instance.SlotName(name)] != ""
	}
	if o.InRecovery {
		return false
	}
	k := min(int(c.pg.Spec.Synchronous), len(readyPVCs(c))-1)
	sync := 0
	for _, state := range o.Standbys {
		if state == "sync" || state == "quorum" {
			sync++
		}
	}
	return sync >= k
}

// rewindFailed: the pod's instance manager could not rewind its data
// directory to follow the primary (instance.ExitRewindFailed).
func rewindFailed(p *corev1.Pod) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode == instance.ExitRewindFailed {
			return true
		}
	}
	return false
}

// podRunning: the pod's process runs. The operator judges the server in
// it by its own observations, not by the pod's Ready condition: that is the
// instance manager's verdict for the Services (see readinessProbe), and a
// replica loses it when its primary is gone, exactly when failover must
// consider it.
func podRunning(p *corev1.Pod) bool {
	return p.DeletionTimestamp.IsZero() && p.Status.Phase == corev1.PodRunning
}

func podFailed(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
}

// podReady: the pod's Ready condition, which the Services go by.
func podReady(p *corev1.Pod) bool {
	if !podRunning(p) {
		return false
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

func jobFinished(j *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, cond := range j.Status.Conditions {
		if cond.Type == t && cond.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// setCondition sets a condition with the Postgres' generation.
func setCondition(pg *v1alpha1.Postgres, t string, s metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&pg.Status.Conditions, metav1.Condition{
		Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: pg.Generation,
	})
}
