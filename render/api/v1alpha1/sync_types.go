package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SyncSpec is one pull loop: a git source, a path in it, and how to apply it.
// Its fields follow Flux's GitRepository and Kustomization folded into one.
type SyncSpec struct {
	// URL of the repository: https://, ssh:// (or scp-like git@host:path) or file://.
	// +kubebuilder:validation:MinLength=1
	URL string `json:"url"`
	// Ref is the branch, tag or commit to follow; the branch "main" when unset.
	// +optional
	Ref *GitRef `json:"ref,omitempty"`
	// Path inside the repository to render.
	// +kubebuilder:default="./"
	// +optional
	Path string `json:"path,omitempty"`
	// SecretRef names a Secret with git credentials: "username" and "password"
	// (or "bearerToken") for HTTPS; "identity" (a private key) and "known_hosts"
	// for SSH.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// Interval between syncs.
	// +kubebuilder:default="1m"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Timeout for fetching, applying and waiting for health.
	// +kubebuilder:default="5m"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Prune deletes objects that were applied by this Sync and left git.
	// +kubebuilder:default=true
	// +optional
	Prune *bool `json:"prune,omitempty"`
	// PruneLimit is the most objects one sync may prune. Unset, a sync
	// refuses to prune more than half of its inventory, or all of it (an
	// empty render, a wrong path), so a bad commit cannot wipe what it
	// applied; deleting the Sync itself is not limited.
	// +kubebuilder:validation:Minimum=0
	// +optional
	PruneLimit *int32 `json:"pruneLimit,omitempty"`
	// Force deletes and re-creates an object whose change the API server
	// refuses because an immutable field changed (a Deployment's selector),
	// as the annotation homeostat.dev/recreate: "true" does for one object.
	// Without either, such a change fails the sync once, naming the field.
	// +optional
	Force bool `json:"force,omitempty"`
	// Wait holds the Sync's Ready condition until every applied object is healthy.
	// +kubebuilder:default=true
	// +optional
	Wait *bool `json:"wait,omitempty"`
	// Suspend stops syncing; a rollback sets it.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// TargetNamespace is given to namespaced objects that name none.
	// +optional
	TargetNamespace string `json:"targetNamespace,omitempty"`
	// ServiceAccountName is impersonated when applying, to limit what a
	// repository may change.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// History is how many Snapshots are kept; the newest three successful
	// ones (rollback targets) are kept beyond it.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +optional
	History int32 `json:"history,omitempty"`
	// Verify requires the revisions applied to be signed (OpenPGP); an
	// unsigned or wrongly signed revision is not applied and the last
	// verified one stays.
	// +optional
	Verify *GitVerification `json:"verify,omitempty"`
	// DependsOn lists Syncs that must be Ready at their latest revision
	// before this one applies (infrastructure before apps).
	// +optional
	DependsOn []SyncReference `json:"dependsOn,omitempty"`
}

// GitRef picks what to check out; the most specific field set wins
// (commit, then tag, then branch).
type GitRef struct {
	// Branch to follow.
	// +optional
	Branch string `json:"branch,omitempty"`
	// Tag to check out.
	// +optional
	Tag string `json:"tag,omitempty"`
	// Commit is an exact commit hash.
	// +optional
	Commit string `json:"commit,omitempty"`
}

// ResourceRef identifies one applied object, as "namespace/Kind/name" parts.
type ResourceRef struct {
	// Group of the object's API version; empty for the core group.
	// +optional
	Group string `json:"group,omitempty"`
	// Version of the object's API.
	// +optional
	Version string `json:"version,omitempty"`
	// Kind of the object.
	Kind string `json:"kind"`
	// Namespace of the object; empty for cluster-scoped objects.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Name of the object.
	Name string `json:"name"`
}

// SyncStatus is the last thing the Sync did and what it owns.
type SyncStatus struct {
	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// LastAppliedRevision is "branch@sha1:<hash>" of the last revision applied
	// successfully.
	// +optional
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`
	// LastAttemptedRevision is the last revision a sync was tried on.
	// +optional
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`
	// LastSnapshot is the name of the newest Snapshot.
	// +optional
	LastSnapshot string `json:"lastSnapshot,omitempty"`
	// LastHandledSyncAt echoes the value of the sync-now annotation last acted on.
	// +optional
	LastHandledSyncAt string `json:"lastHandledSyncAt,omitempty"`
	// Inventory lists every object this Sync applied and still owns; pruning
	// never deletes anything outside it. Above a thousand entries it is
	// held in InventoryCompressed instead.
	// +optional
	Inventory []ResourceRef `json:"inventory,omitempty"`
	// InventoryCompressed is a large inventory as gzip-compressed lines
	// "group<TAB>version<TAB>Kind<TAB>namespace<TAB>name", so a Sync of tens
	// of thousands of objects stays far within etcd's object size limit.
	// +optional
	InventoryCompressed []byte `json:"inventoryCompressed,omitempty"`
	// InventoryCount is the number of objects in the inventory.
	// +optional
	InventoryCount int32 `json:"inventoryCount,omitempty"`
}

// Sync is a git repository path kept applied to the cluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=homeostat
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.lastAppliedRevision`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Sync struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SyncSpec   `json:"spec"`
	Status SyncStatus `json:"status,omitempty"`
}

// SyncList is a list of Syncs.
//
// +kubebuilder:object:root=true
type SyncList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Sync `json:"items"`
}

// Snapshot results.
const (
	SnapshotSucceeded = "Succeeded"
	SnapshotFailed    = "Failed"
)

// SnapshotSpec identifies the sync a Snapshot records. A Snapshot is written
// once, when its sync ends, and never changed.
type SnapshotSpec struct {
	// Sync is the name of the Sync, in the same namespace.
	Sync string `json:"sync"`
	// Revision is "branch@sha1:<hash>".
	// +optional
	Revision string `json:"revision,omitempty"`
	// Message is the commit message's first line.
	// +optional
	Message string `json:"message,omitempty"`
	// Author of the commit.
	// +optional
	Author string `json:"author,omitempty"`
	// Path rendered inside the repository.
	// +optional
	Path string `json:"path,omitempty"`
	// Trigger says what started the sync: interval, webhook, manual, rollback.
	// +optional
	Trigger string `json:"trigger,omitempty"`
}

// Change is one object and what the sync did to it.
type Change struct {
	// Object is "Kind/namespace/name" (or "Kind/name" when cluster-scoped).
	Object string `json:"object"`
	// Action is created, configured, unchanged, pruned or failed.
	Action string `json:"action"`
}

// SnapshotTimings are how long each stage took, in milliseconds.
type SnapshotTimings struct {
	// StartedAt is when the sync began.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// FinishedAt is when the sync ended.
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
	// +optional
	FetchMillis int64 `json:"fetchMillis,omitempty"`
	// +optional
	RenderMillis int64 `json:"renderMillis,omitempty"`
	// +optional
	ApplyMillis int64 `json:"applyMillis,omitempty"`
	// +optional
	PruneMillis int64 `json:"pruneMillis,omitempty"`
	// +optional
	WaitMillis int64 `json:"waitMillis,omitempty"`
}

// SnapshotStatus is what the sync did.
type SnapshotStatus struct {
	// Result is Succeeded or Failed.
	// +optional
	Result string `json:"result,omitempty"`
	// Error says why a failed sync failed, naming the file or object.
	// +optional
	Error string `json:"error,omitempty"`
	// Created, Configured, Unchanged and Pruned count the change set.
	// +optional
	Created int32 `json:"created"`
	// +optional
	Configured int32 `json:"configured"`
	// +optional
	Unchanged int32 `json:"unchanged"`
	// +optional
	Pruned int32 `json:"pruned"`
	// Changed is Created + Configured, for printing.
	// +optional
	Changed int32 `json:"changed"`
	// Changes lists every object that was created, configured or pruned,
	// at most the first thousand (the counts are complete).
	// +optional
	Changes []Change `json:"changes,omitempty"`
	// ChangesOmitted is how many changes did not fit in Changes.
	// +optional
	ChangesOmitted int32 `json:"changesOmitted,omitempty"`
	// Inventory is what the Sync owned after this sync; above a thousand
	// entries it is in InventoryCompressed instead (as in a Sync's status).
	// +optional
	Inventory []ResourceRef `json:"inventory,omitempty"`
	// +optional
	InventoryCompressed []byte `json:"inventoryCompressed,omitempty"`
	// Healthy is true when every object was healthy at the end (or the wait was skipped).
	// +optional
	Healthy bool `json:"healthy,omitempty"`
	// Health lists objects that were not healthy, with their status.
	// +optional
	Health []Change `json:"health,omitempty"`
	// Timings of the stages.
	// +optional
	Timings SnapshotTimings `json:"timings,omitempty"`
	// Count is how many consecutive attempts failed the same way: identical
	// failures share one Snapshot instead of pushing older ones out.
	// +optional
	Count int32 `json:"count,omitempty"`
	// FirstAt and LastAt are when the first and the last of Count
	// identical failures happened.
	// +optional
	FirstAt *metav1.Time `json:"firstAt,omitempty"`
	// +optional
	LastAt *metav1.Time `json:"lastAt,omitempty"`
	// Objects is the rendered desired set, as gzip-compressed multi-document
	// YAML, Secrets excluded; it is what a rollback re-applies.
	// +optional
	Objects []byte `json:"objects,omitempty"`
}

// Snapshot is the record of one sync of a Sync. It has no status
// subresource: it is written whole, in one request.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=snap,categories=homeostat
// +kubebuilder:printcolumn:name="Sync",type=string,JSONPath=`.spec.sync`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.spec.revision`
// +kubebuilder:printcolumn:name="Result",type=string,JSONPath=`.status.result`
// +kubebuilder:printcolumn:name="Changed",type=integer,JSONPath=`.status.changed`
// +kubebuilder:printcolumn:name="Pruned",type=integer,JSONPath=`.status.pruned`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Snapshot struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SnapshotSpec   `json:"spec"`
	Status SnapshotStatus `json:"status,omitempty"`
}

// SnapshotList is a list of Snapshots.
//
// +kubebuilder:object:root=true
type SnapshotList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Snapshot `json:"items"`
}
