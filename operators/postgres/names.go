package postgres

import (
	"fmt"
	"strconv"
	"strings"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Labels and annotations the operator puts on what it creates. Services select
// pods by LabelCluster and LabelRole, so relabelling a pod repoints them.
const (
	LabelCluster  = "homeostat.dev/cluster"
	LabelInstance = "homeostat.dev/instance"
	LabelRole     = "homeostat.dev/role"
	LabelJob      = "homeostat.dev/job"
	LabelBackup   = "homeostat.dev/backup"
	// LabelScheduled marks Backups created by the schedule rather than by hand.
	LabelScheduled = "homeostat.dev/scheduled"

	// AnnotationSerial on a PVC is the instance's serial number.
	AnnotationSerial = "homeostat.dev/serial"
	// AnnotationPVCStatus on a PVC is "initializing" until the init, join or
	// restore Job that fills it succeeded, then "ready".
	AnnotationPVCStatus = "homeostat.dev/pvc-status"
	// AnnotationSwitchover on a Postgres asks for a switchover; its value is
	// the instance to promote, or empty for the most advanced replica.
	// `homeostat pg switchover` sets it; the controller removes it when done.
	AnnotationSwitchover = "homeostat.dev/switchover"
	// AnnotationSwitchoverLSN records the old primary's WAL position when a
	// switchover stopped it; the replica promoted must have received it.
	AnnotationSwitchoverLSN = "homeostat.dev/switchover-lsn"
	// AnnotationForcePromote on a Postgres promotes a replica (its value, or
	// the most advanced when empty) even where that is FailoverUnsafe:
	// `homeostat pg promote NAME --force` sets it, the controller removes it.
	AnnotationForcePromote = "homeostat.dev/force-promote"
	// AnnotationHeartbeat on a primary's pod is renewed by its instance
	// manager while it runs as a primary and reaches the API server; the
	// operator fails over only once it has been silent for longer than the
	// fencing bound (see fenceWait).
	AnnotationHeartbeat = "homeostat.dev/heartbeat"
	// AnnotationParameters lists the spec.parameters names the operator set
	// on every instance, so a name that leaves the spec is reset.
	AnnotationParameters = "homeostat.dev/applied-parameters"

	// FinalizerName lets the controller apply the deletion policy.
	FinalizerName = "homeostat.dev/postgres"
)

// Instance roles, as in the pod label LabelRole.
const (
	RolePrimary = "primary"
	RoleReplica = "replica"
)

// PVC states, as in AnnotationPVCStatus.
const (
	pvcInitializing = "initializing"
	pvcReady        = "ready"
)

// Job kinds, as in the label LabelJob.
const (
	JobInit    = "init"
	JobJoin    = "join"
	JobRestore = "restore"
	JobBackup  = "backup"
)

// Paths inside an instance pod.
const (
	dataMount  = "/var/lib/postgresql/data"
	pgdataPath = dataMount + "/pgdata"
	binMount   = "/homeostat"
	binPath    = binMount + "/homeostat"
	// copyMount is where the init container sees the shared volume: the
	// homeostat image keeps its own binary at /homeostat.
	copyMount = "/shared"
	// bootstrapS3Mount holds the restore source's S3 credentials.
	bootstrapS3Mount = "/etc/homeostat/bootstrap-s3"
	postgresPort     = 5432
	superuserName    = "postgres"
	replUserName     = "streaming_replica"
)

// InstanceName is the name of an instance's pod and volume claim.
func InstanceName(cluster string, serial int) string { return fmt.Sprintf("%s-%d", cluster, serial) }

// instanceSerial parses the serial from an instance name; 0 if it has none.
func instanceSerial(cluster, instance string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(instance, cluster+"-"))
	if err != nil || !strings.HasPrefix(instance, cluster+"-") {
		return 0
	}
	return n
}

// RWService is the Service that always points at the primary.
func RWService(cluster string) string { return cluster + "-rw" }

// ROService is the Service that points at the replicas.
func ROService(cluster string) string { return cluster + "-ro" }

// SecretName is the name of one of the cluster's credential Secrets
// (kind is "superuser", "replication" or "app").
func SecretName(cluster, kind string) string { return cluster + "-" + kind }

// JobName is the name of the Job of the given kind for an instance.
func JobName(instance, kind string) string { return instance + "-" + kind }

// BackupJobName is the name of the Job that carries out a Backup.
func BackupJobName(backup string) string { return backup + "-push" }

// Image is the PostgreSQL image of a cluster: spec.image, else the official
// postgres image of spec.version.
func Image(pg *v1alpha1.Postgres) string {
	if pg.Spec.Image != "" {
		return pg.Spec.Image
	}
	v := pg.Spec.Version
	if v == "" {
		v = "16"
	}
	return "postgres:" + v
}

// database and owner apply the defaults the CRD would.
func database(pg *v1alpha1.Postgres) string {
	if pg.Spec.Database == "" {
		return "app"
	}
	return pg.Spec.Database
}

func owner(pg *v1alpha1.Postgres) string {
	if pg.Spec.Owner == "" {
		return database(pg)
	}
	return pg.Spec.Owner
}

func instances(pg *v1alpha1.Postgres) int {
	if pg.Spec.Instances < 1 {
		return 1
	}
	return int(pg.Spec.Instances)
}

// commonLabels are on every object of a cluster.
func commonLabels(pg *v1alpha1.Postgres) map[string]string {
	return map[string]string{
		v1alpha1.LabelName:      pg.Name,
		v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue,
		LabelCluster:            pg.Name,
	}
}

func withLabels(base map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(base)+len(kv)/2)
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}
