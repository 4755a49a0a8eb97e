package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PostgresSpec describes a replicated PostgreSQL cluster with backups, in the
// spirit of CloudNativePG's Cluster: one primary, streaming replicas, an app
// database and owner, continuous WAL archiving and scheduled base backups to S3.
type PostgresSpec struct {
	// Version is the PostgreSQL major version; the image is "postgres:<version>"
	// unless Image is set. It cannot change once set: the data directory
	// belongs to one major version, and homeostat does not run pg_upgrade.
	// +kubebuilder:default="16"
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.version cannot change: homeostat does not upgrade a major version in place. Create a new Postgres with the new version and copy the data into it with pg_dump and pg_restore (a new cluster from spec.bootstrap.fromBackup keeps its source's major version); for a minor version, change spec.image"
	// +optional
	Version string `json:"version,omitempty"`

	// Image overrides the PostgreSQL container image. Changing it (a new
	// minor version) replaces the instances' pods one at a time, the
	// primary last (see PrimaryUpdateStrategy).
	// +optional
	Image string `json:"image,omitempty"`

	// PrimaryUpdateStrategy says what a rolling update does once every
	// replica runs the new spec: "unsupervised" switches over to an updated
	// replica and replaces the old primary; "supervised" waits until
	// `homeostat pg switchover` asks for it.
	// +kubebuilder:validation:Enum=unsupervised;supervised
	// +kubebuilder:default=unsupervised
	// +optional
	PrimaryUpdateStrategy string `json:"primaryUpdateStrategy,omitempty"`

	// Instances is the number of PostgreSQL servers: one primary, the rest replicas.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=9
	// +optional
	Instances int32 `json:"instances,omitempty"`

	// Synchronous is how many replicas must confirm each commit
	// (synchronous_standby_names = ANY n (...)); 0 means asynchronous replication.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Synchronous int32 `json:"synchronous,omitempty"`

	// Storage is the volume each instance gets.
	Storage Storage `json:"storage"`

	// Database is the application database; its owner has the same name and its
	// credentials are in the Secret "<name>-app".
	// +kubebuilder:default=app
	// +kubebuilder:validation:Pattern=`^[a-z_][a-z0-9_]*$`
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Database string `json:"database,omitempty"`

	// Owner is the application role; defaults to Database.
	// +kubebuilder:validation:Pattern=`^[a-z_][a-z0-9_]*$`
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Owner string `json:"owner,omitempty"`

	// Parameters are postgresql.conf settings merged over homeostat's own.
	// New instances start with them; running ones get a change with ALTER
	// SYSTEM and a reload, and a setting that needs a restart makes a
	// rolling update (replicas first, the primary last). Settings homeostat
	// needs for replication, archiving and recovery cannot be overridden.
	// +optional
	Parameters map[string]string `json:"parameters,omitempty"`

	// Resources is what each instance's pod asks for.
	// +optional
	Resources *Resources `json:"resources,omitempty"`

	// Backup configures the WAL archive and scheduled base backups.
	// +optional
	Backup *PostgresBackup `json:"backup,omitempty"`

	// Bootstrap creates the cluster from an existing backup instead of an empty
	// initdb.
	// +optional
	Bootstrap *Bootstrap `json:"bootstrap,omitempty"`

	// FailoverDelay is how long the primary may be unreachable before the
	// best replica (newest timeline, then most WAL received) is promoted.
	// It is also the primary's self-fencing bound: a primary whose instance
	// manager reaches neither the API server nor any streaming replica for
	// longer shuts postgres down, and the operator promotes away from a
	// primary whose pod still runs only once its heartbeat has been silent
	// for failoverDelay + 2 x failoverDelay/5 + 1s, so two primaries never
	// take writes at once. Shorter fails over sooner, and fences a primary
	// sooner on a brief network cut.
	// +kubebuilder:default="30s"
	// +optional
	FailoverDelay *metav1.Duration `json:"failoverDelay,omitempty"`

	// TLS chooses who issues the server certificate; without it the operator
	// runs a certificate authority of its own per cluster. Every network
	// login needs TLS either way.
	// +optional
	TLS *PostgresTLS `json:"tls,omitempty"`

	// DeletionPolicy says what happens to the volumes when the Postgres is
	// deleted: Retain keeps them, Delete removes them.
	// +kubebuilder:validation:Enum=Retain;Delete
	// +kubebuilder:default=Retain
	// +optional
	DeletionPolicy string `json:"deletionPolicy,omitempty"`

	// Affinity is the instance pods' scheduling affinity (node affinity,
	// pod affinity and anti-affinity), as in a pod spec. Unset, pods have
	// none and are spread by TopologySpreadConstraints.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// TopologySpreadConstraints replace the default spread of the instance
	// pods: one constraint on kubernetes.io/hostname with maxSkew 1 and
	// whenUnsatisfiable ScheduleAnyway, so instances land on different
	// nodes where there are nodes enough, and a one-node cluster still
	// schedules them all.
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`

	// Probes tune the instance pods' probes.
	// +optional
	Probes *PostgresProbes `json:"probes,omitempty"`
}

// PostgresProbes tune how an instance's readiness is judged.
type PostgresProbes struct {
	// Readiness tunes the readiness probe.
	// +optional
	Readiness *ReadinessProbe `json:"readiness,omitempty"`
}

// ReadinessProbe tunes the instance manager's readiness check: a primary is
// ready when it accepts writes, a replica when it streams from the primary
// and has replayed all but MaximumLag of what the primary sent.
type ReadinessProbe struct {
	// MaximumLag is how much WAL a streaming replica may have received
	// from the primary's position but not replayed and still be ready, as
	// a byte quantity ("64Mi" when unset; "0" asks for none at all).
	// +kubebuilder:validation:Pattern=`^[0-9]+(Ki|Mi|Gi|Ti)?$`
	// +optional
	MaximumLag string `json:"maximumLag,omitempty"`
}

// PostgresTLS configures the cluster's server certificate.
type PostgresTLS struct {
	// Issuer names a cert-manager Issuer or ClusterIssuer: the operator
	// then asks cert-manager for the server certificate (a Certificate
	// writing the Secret NAME-server) instead of signing it itself. The
	// issuer must put its CA in the Secret's ca.crt, which clients and
	// replicas verify against.
	// +optional
	Issuer *IssuerRef `json:"issuer,omitempty"`
}

// IssuerRef names a cert-manager issuer, as cert-manager's own issuerRef.
type IssuerRef struct {
	// Name of the issuer.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Kind is Issuer (in the Postgres's namespace) or ClusterIssuer.
	// +kubebuilder:validation:Enum=Issuer;ClusterIssuer
	// +kubebuilder:default=Issuer
	// +optional
	Kind string `json:"kind,omitempty"`
	// Group is the issuer's API group.
	// +kubebuilder:default=cert-manager.io
	// +optional
	Group string `json:"group,omitempty"`
}

// Storage is a PersistentVolumeClaim template.
type Storage struct {
	// Size of each instance's volume, for example "20Gi".
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$`
	Size string `json:"size"`
	// StorageClassName selects the storage class; the cluster default when unset.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// S3Store is an S3-compatible object store (AWS S3, MinIO, Ceph RGW, R2).
type S3Store struct {
	// Endpoint is host[:port], without a scheme (set insecure for plain HTTP);
	// "s3.amazonaws.com" for AWS.
	// +kubebuilder:validation:Pattern=`^[^/:]+(:[0-9]+)?$`
	Endpoint string `json:"endpoint"`
	// Bucket holds the backups; it is created when missing.
	// +kubebuilder:validation:MinLength=1
	Bucket string `json:"bucket"`
	// Path is a key prefix inside the bucket; one cluster per path.
	// +optional
	Path string `json:"path,omitempty"`
	// Region of the bucket.
	// +optional
	Region string `json:"region,omitempty"`
	// Insecure uses plain HTTP instead of HTTPS.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
	// SecretRef names a Secret with the keys AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY.
	SecretRef LocalObjectReference `json:"secretRef"`
}

// PostgresBackup configures continuous archiving and base backups.
type PostgresBackup struct {
	// S3 is where base backups and WAL go.
	S3 S3Store `json:"s3"`
	// Schedule is a cron expression (five fields, UTC) for base backups.
	// +optional
	Schedule string `json:"schedule,omitempty"`
	// Keep is how many base backups to retain, with the WAL they need.
	// +kubebuilder:default=7
	// +kubebuilder:validation:Minimum=1
	// +optional
	Keep int32 `json:"keep,omitempty"`
}

// Bootstrap says how a new cluster gets its first data.
type Bootstrap struct {
	// FromBackup restores a base backup and replays WAL to a target.
	// +optional
	FromBackup *BootstrapFromBackup `json:"fromBackup,omitempty"`
}

// BootstrapFromBackup is a point-in-time restore into a new cluster.
// +kubebuilder:validation:XValidation:rule="!(has(self.targetTime) && has(self.targetLSN))",message="set at most one of targetTime and targetLSN"
type BootstrapFromBackup struct {
	// S3 is the store of the cluster being restored.
	S3 S3Store `json:"s3"`
	// BackupID picks a base backup; the newest one before the target when unset.
	// +optional
	BackupID string `json:"backupID,omitempty"`
	// TargetTime is an RFC 3339 time to recover to.
	// +optional
	TargetTime *metav1.Time `json:"targetTime,omitempty"`
	// TargetLSN is a WAL location to recover to, for example "0/3000060".
	// +kubebuilder:validation:Pattern=`^[0-9A-Fa-f]+/[0-9A-Fa-f]+$`
	// +optional
	TargetLSN string `json:"targetLSN,omitempty"`
}

// InstanceStatus is what the operator last observed of one instance.
type InstanceStatus struct {
	// Name of the instance's pod.
	Name string `json:"name"`
	// Role is "primary" or "replica".
	Role string `json:"role"`
	// Ready is true when the server accepts connections.
	Ready bool `json:"ready"`
	// Timeline the instance is on.
	// +optional
	Timeline int64 `json:"timeline,omitempty"`
	// LSN is the last WAL location written (primary) or replayed (replica).
	// +optional
	LSN string `json:"lsn,omitempty"`
	// LagBytes is how far a replica's replay is behind the primary.
	// +optional
	LagBytes int64 `json:"lagBytes,omitempty"`
	// DataBytes is the space the data directory takes on its volume
	// (WAL included), as the instance manager last measured it (every
	// 30 s).
	// +optional
	DataBytes int64 `json:"dataBytes,omitempty"`
	// VolumeFreeBytes is the space left on the instance's volume, measured
	// with DataBytes; a full volume stops postgres.
	// +optional
	VolumeFreeBytes *int64 `json:"volumeFreeBytes,omitempty"`
	// Outdated says why the instance's pod waits to be replaced by a
	// rolling update ("pod template" when it was made from an older spec,
	// "pending restart: NAME,..." for settings that take effect only at a
	// restart); empty when it runs the current spec.
	// +optional
	Outdated string `json:"outdated,omitempty"`
}

// PostgresStatus is the operator's view of a cluster.
type PostgresStatus struct {
	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Phase is the workflow step the operator is in, for example
	// "Bootstrapping", "CreatingReplica", "Healthy", "FailingOver".
	// +optional
	Phase string `json:"phase,omitempty"`
	// Primary is the name of the primary instance.
	// +optional
	Primary string `json:"primary,omitempty"`
	// Instances is one entry per instance.
	// +optional
	Instances []InstanceStatus `json:"instances,omitempty"`
	// ReadyInstances counts instances that accept connections.
	// +optional
	ReadyInstances int32 `json:"readyInstances,omitempty"`
	// LastBackup is when the newest completed base backup finished.
	// +optional
	LastBackup *metav1.Time `json:"lastBackup,omitempty"`
	// FirstRecoverabilityPoint is the earliest time a restore can target.
	// +optional
	FirstRecoverabilityPoint *metav1.Time `json:"firstRecoverabilityPoint,omitempty"`
}

// Postgres is a replicated PostgreSQL cluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pg,categories=homeostat
// +kubebuilder:printcolumn:name="Primary",type=string,JSONPath=`.status.primary`
// +kubebuilder:printcolumn:name="Instances",type=integer,JSONPath=`.spec.instances`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyInstances`
// +kubebuilder:printcolumn:name="Last Backup",type=date,JSONPath=`.status.lastBackup`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Postgres struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PostgresSpec   `json:"spec"`
	Status PostgresStatus `json:"status,omitempty"`
}

// PostgresList is a list of Postgres clusters.
//
// +kubebuilder:object:root=true
type PostgresList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Postgres `json:"items"`
}

// BackupSpec asks for one base backup of a cluster.
type BackupSpec struct {
	// Cluster is the Postgres to back up, in the same namespace.
	Cluster LocalObjectReference `json:"cluster"`
}

// Backup phases.
const (
	BackupPending   = "Pending"
	BackupRunning   = "Running"
	BackupCompleted = "Completed"
	BackupFailed    = "Failed"
)

// BackupStatus records how the backup went.
type BackupStatus struct {
	// Phase is Pending, Running, Completed or Failed.
	// +optional
	Phase string `json:"phase,omitempty"`
	// BackupID is the backup's name in the object store.
	// +optional
	BackupID string `json:"backupID,omitempty"`
	// StartedAt is when the backup began.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// StoppedAt is when the backup ended.
	// +optional
	StoppedAt *metav1.Time `json:"stoppedAt,omitempty"`
	// BeginLSN and EndLSN bound the WAL the backup needs.
	// +optional
	BeginLSN string `json:"beginLSN,omitempty"`
	// +optional
	EndLSN string `json:"endLSN,omitempty"`
	// Timeline the backup was taken on.
	// +optional
	Timeline int64 `json:"timeline,omitempty"`
	// Size is the compressed size in bytes.
	// +optional
	Size int64 `json:"size,omitempty"`
	// Error says why a failed backup failed.
	// +optional
	Error string `json:"error,omitempty"`
}

// Backup is one base backup of a Postgres, scheduled or created by hand.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=homeostat
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.cluster.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Size",type=integer,JSONPath=`.status.size`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Backup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BackupSpec   `json:"spec"`
	Status BackupStatus `json:"status,omitempty"`
}

// BackupList is a list of Backups.
//
// +kubebuilder:object:root=true
type BackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Backup `json:"items"`
}
