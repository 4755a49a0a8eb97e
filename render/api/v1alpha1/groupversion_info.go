// Package v1alpha1 holds the API types of homeostat's kinds in the group
// homeostat.dev: the high-level kinds developers commit to git (App, Postgres,
// Pipeline), the records the operators keep (Backup, Build), and the sync
// machinery itself (Sync, Snapshot).
//
// +kubebuilder:object:generate=true
// +groupName=homeostat.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of every homeostat kind.
var GroupVersion = schema.GroupVersion{Group: "homeostat.dev", Version: "v1alpha1"}

var (
	// SchemeBuilder registers the homeostat kinds with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the homeostat kinds to a scheme, for clients and managers.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&App{}, &AppList{},
		&Postgres{}, &PostgresList{},
		&Backup{}, &BackupList{},
		&Pipeline{}, &PipelineList{},
		&Build{}, &BuildList{},
		&Sync{}, &SyncList{},
		&Snapshot{}, &SnapshotList{},
	)
	metav1AddToGroupVersion(s)
	return nil
}
