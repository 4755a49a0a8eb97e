package postgres

import (
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Options are the settings of the operator itself that end up in the specs.
type Options struct {
	// HomeostatImage is the image the init container copies the homeostat
	// binary from (flag --homeostat-image, env HOMEOSTAT_IMAGE).
	HomeostatImage string

	// plainPrimary is set per cluster while its primary's pod was made
	// before TLS existed (see optionsFor): replicas and backups made
	// meanwhile reach it with sslmode=prefer, not verify-full.
	plainPrimary bool
}

// PVC builds the volume claim of one instance. It has no owner reference: the
// volumes outlive the Postgres unless spec.deletionPolicy is Delete, which the
// controller's finalizer applies.
func PVC(pg *v1alpha1.Postgres, instance string, serial int) *corev1.PersistentVolumeClaim {
	size, err := resource.ParseQuantity(pg.Spec.Storage.Size)
	if err != nil {
		// The CRD's pattern admits only valid quantities; an empty size
		// (a Postgres built in Go without defaults) gets a small volume.
		size = resource.MustParse("1Gi")
	}
	return &corev1.PersistentVolumeClaim{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        instance,
			Namespace:   pg.Namespace,
			Labels:      withLabels(commonLabels(pg), LabelInstance, instance),
			Annotations: map[string]string{AnnotationSerial: strconv.Itoa(serial), AnnotationPVCStatus: pvcInitializing},
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: pg.Spec.Storage.StorageClassName,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
}

// InitJob builds the Job that creates the first instance's data directory
// with `homeostat instance init`.
func InitJob(pg *v1alpha1.Postgres, instance string, o Options) *batchv1.Job {
	j := job(pg, instance, JobName(instance, JobInit), JobInit, initArgs(pg), o)
	c := &j.Spec.Template.Spec.Containers[0]
	c.Env = append(c.Env, passwordEnv(pg, SecretSuperuser, SecretReplication, SecretApp)...)
	return j
}

// JoinJob builds the Job that clones a replica from the primary with
// `homeostat instance join`, through the NAME-rw Service so it follows the
// primary across failovers.
func JoinJob(pg *v1alpha1.Postgres, instance string, o Options) *batchv1.Job {
	args := []string{binPath, "instance", "join", "--pgdata", pgdataPath, "--port", strconv.Itoa(postgresPort),
		"--primary", RWService(pg.Name) + ":" + strconv.Itoa(postgresPort), "--name", instance, "--tls-dir", tlsMount}
	args = append(args, upstreamArgs(o)...)
	// The replica's configuration is written anew, so it needs the user's
	// parameters too: a standby with a lower max_connections (and the like)
	// than its primary cannot run hot standby.
	args = append(args, parameterArgs(pg)...)
	j := job(pg, instance, JobName(instance, JobJoin), JobJoin, args, o)
	c := &j.Spec.Template.Spec.Containers[0]
	c.Env = append(c.Env, passwordEnv(pg, SecretReplication)...)
	return j
}

// RestoreJob builds the Job that fills the first instance's data directory
// from a base backup and the source cluster's WAL archive, recovered to the
// bootstrap target: an init container runs `homeostat backup restore` with
// the source store's settings, then `homeostat instance init` (which only
// rewrites the configuration of an existing directory) gives the restored
// directory this cluster's port, archive and access rules. Recovery runs when
// the primary's pod first starts.
func RestoreJob(pg *v1alpha1.Postgres, instance string, o Options) *batchv1.Job {
	fb := pg.Spec.Bootstrap.FromBackup
	args := []string{binPath, "backup", "restore", "--to", pgdataPath}
	if fb.BackupID != "" {
		args = append(args, "--backup", fb.BackupID)
	} else {
		args = append(args, "--latest")
	}
	switch {
	case fb.TargetTime != nil:
		args = append(args, "--target-time", fb.TargetTime.UTC().Format(time.RFC3339Nano))
	case fb.TargetLSN != "":
		args = append(args, "--target-lsn", fb.TargetLSN)
	}
	j := job(pg, instance, JobName(instance, JobRestore), JobRestore, initArgs(pg), o)
	spec := &j.Spec.Template.Spec
	main := spec.Containers[0]
	restore := corev1.Container{
		Name:         "restore",
		Image:        main.Image,
		Command:      args,
		Env:          append(withoutS3Env(main.Env), bootstrapS3Env(&fb.S3)...),
		VolumeMounts: main.VolumeMounts,
		Resources:    main.Resources,
	}
	spec.InitContainers = append(spec.InitContainers, restore)
	return j
}

// BackupJob builds the Job that carries out a Backup: `homeostat backup
// push` streams a base backup of the primary (reached through NAME-rw, as the
// replication role) to the cluster's store, labelled for the Backup, then
// applies retention (--keep).
// The Job needs no volume: pg_basebackup reads over the replication protocol.
func BackupJob(pg *v1alpha1.Postgres, b *v1alpha1.Backup, o Options) *batchv1.Job {
	args := []string{binPath, "backup", "push", "--host", RWService(pg.Name), "--port", strconv.Itoa(postgresPort),
		"--user", replUserName, "--label", BackupLabel(b)}
	if pg.Spec.Backup != nil && pg.Spec.Backup.Keep > 0 {
		args = append(args, "--keep", strconv.Itoa(int(pg.Spec.Backup.Keep)))
	}
	j := job(pg, "", BackupJobName(b.Name), JobBackup, args, o)
	j.Labels[LabelBackup] = b.Name
	j.Spec.Template.Labels[LabelBackup] = b.Name
	c := &j.Spec.Template.Spec.Containers[0]
	c.Env = append(c.Env, secretEnv("PGPASSWORD", SecretName(pg.Name, SecretReplication), "password"))
	if !o.plainPrimary {
		verifyPrimary(pg, &j.Spec.Template.Spec)
	}
	return j
}

// InstancePod builds the pod of one instance: `homeostat instance run` as the
// main process of the official postgres image. It gets every role's password
// because, once its server is a primary, it sets them from the secrets: a
// cluster restored from a backup holds the source cluster's passwords.
func InstancePod(pg *v1alpha1.Postgres, instance, role string, o Options) *corev1.Pod {
	// The port is in the configuration init or join wrote. --cluster makes
	// the instance manager ask the API server who the primary is before
	// postgres starts: a former primary rewinds and rejoins.
	args := []string{binPath, "instance", "run", "--pgdata", pgdataPath, "--owner", owner(pg),
		"--cluster", pg.Name, "--primary", RWService(pg.Name) + ":" + strconv.Itoa(postgresPort),
		"--fence-after", failoverDelay(pg).String(), "--tls-dir", tlsMount, "--health-addr", ":" + strconv.Itoa(healthPort), "--max-lag", maxLag(pg),
		"--termination-log", corev1.TerminationMessagePathDefault}
	spec := podSpec(pg, instance, args, o)
	spec.RestartPolicy = corev1.RestartPolicyAlways
	spec.Hostname = instance
	c := &spec.Containers[0]
	c.Env = append(c.Env, fieldEnv("POD_NAME", "metadata.name"), fieldEnv("POD_NAMESPACE", "metadata.namespace"))
	c.Env = append(c.Env, passwordEnv(pg, SecretSuperuser, SecretReplication, SecretApp)...)
	c.Ports = []corev1.ContainerPort{{Name: "postgres", ContainerPort: postgresPort, Protocol: corev1.ProtocolTCP},
		{Name: "health", ContainerPort: healthPort, Protocol: corev1.ProtocolTCP}}
	c.ReadinessProbe = readinessProbe()
	spec.Affinity, spec.TopologySpreadConstraints = placement(pg)
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      instance,
			Namespace: pg.Namespace,
			Labels:    withLabels(commonLabels(pg), LabelInstance, instance, LabelRole, role),
		},
		Spec: spec,
	}
}

// Services builds NAME-rw (the primary) and NAME-ro (the replicas); both
// select by role, so relabelling pods on failover repoints them.
func Services(pg *v1alpha1.Postgres) []*corev1.Service {
	svc := func(name, role string) *corev1.Service {
		return &corev1.Service{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{
				Name:      name,
				Namespace: pg.Namespace,
				Labels:    withLabels(commonLabels(pg), LabelRole, role),
			},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{LabelCluster: pg.Name, LabelRole: role},
				Ports: []corev1.ServicePort{{
					Name: "postgres", Port: postgresPort, TargetPort: intstr.FromString("postgres"), Protocol: corev1.ProtocolTCP,
				}},
			},
		}
	}
	return []*corev1.Service{svc(RWService(pg.Name), RolePrimary), svc(ROService(pg.Name), RoleReplica)}
}

// initArgs are the flags of `homeostat instance init`: the database, its
// owner and the user's parameters. Replication and archiving settings are the
// data plane's own; the S3 store reaches it through the environment.
func initArgs(pg *v1alpha1.Postgres) []string {
	args := []string{binPath, "instance", "init", "--pgdata", pgdataPath, "--port", strconv.Itoa(postgresPort),
		"--database", database(pg), "--owner", owner(pg), "--tls-dir", tlsMount}
	return append(args, parameterArgs(pg)...)
}

// parameterArgs are homeostat's sized settings, then the user's parameters
// (which win), as --parameter flags, sorted.
func parameterArgs(pg *v1alpha1.Postgres) []string {
	args := []string{"--parameter", "max_slot_wal_keep_size=" + slotWALLimit(pg), "--parameter", "wal_keep_size=" + rewindWALKeep(pg)}
	for _, k := range sortedKeys(pg.Spec.Parameters) {
		args = append(args, "--parameter", k+"="+pg.Spec.Parameters[k])
	}
	return args
}

// slotWALLimit is max_slot_wal_keep_size: a quarter of the volume, so the
// slot of a replica that is gone for good (every instance keeps one for
// every other) cannot fill the disk; such a replica is cloned again.
func slotWALLimit(pg *v1alpha1.Postgres) string {
	size, err := resource.ParseQuantity(pg.Spec.Storage.Size)
	if err != nil {
		size = resource.MustParse("1Gi")
	}
	return strconv.FormatInt(max(size.Value()/4>>20, 64), 10) + "MB"
}

// rewindWALKeep is wal_keep_size: an eighth of the volume, at most 1 GB
// (max_wal_size's default, the most WAL between two checkpoints). pg_rewind
// reads the old primary's WAL back to the last checkpoint before the fork;
// a primary that shut down cleanly after the fork (it fenced itself) would
// otherwise have removed it, and could only be cloned again. With a backup
// store, pg_rewind also fetches missing WAL from the archive.
func rewindWALKeep(pg *v1alpha1.Postgres) string {
	size, err := resource.ParseQuantity(pg.Spec.Storage.Size)
	if err != nil {
		size = resource.MustParse("1Gi")
	}
	return strconv.FormatInt(min(max(size.Value()/8>>20, 64), 1024), 10) + "MB"
}

// job wraps a pod spec into a Job that runs once: the controller decides what
// a failure means and recreates the Job when a retry makes sense.
func job(pg *v1alpha1.Postgres, instance, name, kind string, args []string, o Options) *batchv1.Job {
	spec := podSpec(pg, instance, args, o)
	spec.RestartPolicy = corev1.RestartPolicyNever
	// The Jobs (init, join, restore, backup push) make no request to the
	// API server: no token, so none can be misused from them.
	spec.AutomountServiceAccountToken = ptr.To(false)
	labels := withLabels(commonLabels(pg), LabelJob, kind)
	if instance != "" {
		labels[LabelInstance] = instance
	}
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: pg.Namespace, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: withLabels(labels)},
				Spec:       spec,
			},
		},
	}
}

// podSpec is what every instance pod and Job shares: the init container that
// copies the homeostat binary into an emptyDir, and the postgres container
// with the instance's volume, credentials and backup store.
func podSpec(pg *v1alpha1.Postgres, instance string, args []string, o Options) corev1.PodSpec {
	mounts := []corev1.VolumeMount{{Name: "homeostat", MountPath: binMount}}
	volumes := []corev1.Volume{{Name: "homeostat", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	if instance != "" {
		mounts = append([]corev1.VolumeMount{{Name: "pgdata", MountPath: dataMount}}, mounts...)
		volumes = append([]corev1.Volume{{Name: "pgdata", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: instance}}}}, volumes...)
		// The server certificate: the instance manager installs it for
		// postgres and reloads it when the Secret changes.
		mounts = append(mounts, corev1.VolumeMount{Name: tlsVolume, MountPath: tlsMount, ReadOnly: true})
		volumes = append(volumes, serverSecretVolume(pg))
	}
	if bs := pg.Spec.Bootstrap; bs != nil && bs.FromBackup != nil {
		// restore_command reads the source store until recovery ends; its
		// credentials are files, so they stay out of postgresql.auto.conf
		// and do not clash with this cluster's own store.
		mounts = append(mounts, corev1.VolumeMount{Name: "bootstrap-s3", MountPath: bootstrapS3Mount, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: "bootstrap-s3", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: bs.FromBackup.S3.SecretRef.Name}}})
	}
	return corev1.PodSpec{
		// Not the namespace's default: InstanceRole grants this one exactly
		// what `instance run` asks the API server.
		ServiceAccountName:            ServiceAccountName(pg.Name),
		TerminationGracePeriodSeconds: ptr.To[int64](60),
		InitContainers: []corev1.Container{{
			Name:         "homeostat",
			Image:        o.HomeostatImage,
			Command:      []string{"/homeostat", "copy-self", copyMount + "/homeostat"},
			VolumeMounts: []corev1.VolumeMount{{Name: "homeostat", MountPath: copyMount}},
		}},
		Containers: []corev1.Container{{
			Name:         "postgres",
			Image:        Image(pg),
			Command:      args,
			Env:          instanceEnv(pg),
			VolumeMounts: mounts,
			Resources:    resources(pg.Spec.Resources),
		}},
		Volumes: volumes,
	}
}

// instanceEnv passes the backup store as the HOMEOSTAT_S3_* variables the
// data plane reads (credentials as secret references), so archive_command
// carries no secret.
func instanceEnv(pg *v1alpha1.Postgres) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: "PGDATA", Value: pgdataPath},
	}
	if pg.Spec.Backup != nil {
		env = append(env, s3Env(&pg.Spec.Backup.S3)...)
	}
	return env
}

// s3Env is a store's settings in the data plane's environment variables.
func s3Env(s *v1alpha1.S3Store) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: "HOMEOSTAT_S3_ENDPOINT", Value: s.Endpoint},
		{Name: "HOMEOSTAT_S3_BUCKET", Value: s.Bucket},
		{Name: "HOMEOSTAT_S3_PREFIX", Value: s.Path},
	}
	if s.Region != "" {
		env = append(env, corev1.EnvVar{Name: "HOMEOSTAT_S3_REGION", Value: s.Region})
	}
	if s.Insecure {
		env = append(env, corev1.EnvVar{Name: "HOMEOSTAT_S3_INSECURE", Value: "true"})
	}
	return append(env,
		secretEnv("AWS_ACCESS_KEY_ID", s.SecretRef.Name, "AWS_ACCESS_KEY_ID"),
		secretEnv("AWS_SECRET_ACCESS_KEY", s.SecretRef.Name, "AWS_SECRET_ACCESS_KEY"))
}

// bootstrapS3Env is the source store of a restore, with its credentials
// read from the mounted secret (HOMEOSTAT_S3_CREDENTIALS_DIR), which the
// restore_command it writes names too.
func bootstrapS3Env(s *v1alpha1.S3Store) []corev1.EnvVar {
	env := withoutS3Env(s3Env(s))
	env = append(env, corev1.EnvVar{Name: "HOMEOSTAT_S3_ENDPOINT", Value: s.Endpoint},
		corev1.EnvVar{Name: "HOMEOSTAT_S3_BUCKET", Value: s.Bucket}, corev1.EnvVar{Name: "HOMEOSTAT_S3_PREFIX", Value: s.Path})
	if s.Region != "" {
		env = append(env, corev1.EnvVar{Name: "HOMEOSTAT_S3_REGION", Value: s.Region})
	}
	if s.Insecure {
		env = append(env, corev1.EnvVar{Name: "HOMEOSTAT_S3_INSECURE", Value: "true"})
	}
	return append(env, corev1.EnvVar{Name: "HOMEOSTAT_S3_CREDENTIALS_DIR", Value: bootstrapS3Mount})
}

func withoutS3Env(env []corev1.EnvVar) []corev1.EnvVar {
	out := env[:0:0]
	for _, e := range env {
		switch e.Name {
		case "HOMEOSTAT_S3_ENDPOINT", "HOMEOSTAT_S3_BUCKET", "HOMEOSTAT_S3_PREFIX", "HOMEOSTAT_S3_REGION",
			"HOMEOSTAT_S3_INSECURE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY":
			continue
		}
		out = append(out, e)
	}
	return out
}

// passwordEnv are the passwords a container needs, by secret kind, as the
// data plane's HOMEOSTAT_<KIND>_PASSWORD variables: secret references, never
// arguments, so they stay out of `ps` and the pod spec. Each container gets
// only the ones it uses.
func passwordEnv(pg *v1alpha1.Postgres, kinds ...string) []corev1.EnvVar {
	var env []corev1.EnvVar
	for _, k := range kinds {
		env = append(env, secretEnv("HOMEOSTAT_"+strings.ToUpper(k)+"_PASSWORD", SecretName(pg.Name, k), "password"))
	}
	return env
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
}

func secretEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key,
	}}}
}

// resources uses the same value as request and limit for memory, so an
// instance is never overcommitted (the usual cause of surprise OOM kills).
func resources(r *v1alpha1.Resources) corev1.ResourceRequirements {
	var out corev1.ResourceRequirements
	if r == nil {
		return out
	}
	out.Requests = corev1.ResourceList{}
	if q, err := resource.ParseQuantity(r.CPU); err == nil && r.CPU != "" {
		out.Requests[corev1.ResourceCPU] = q
	}
	if q, err := resource.ParseQuantity(r.Memory); err == nil && r.Memory != "" {
		out.Requests[corev1.ResourceMemory] = q
		out.Limits = corev1.ResourceList{corev1.ResourceMemory: q}
	}
	return out
}
