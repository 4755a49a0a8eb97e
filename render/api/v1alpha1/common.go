package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func metav1AddToGroupVersion(s *runtime.Scheme) { metav1.AddToGroupVersion(s, GroupVersion) }

// Condition types shared by every kind, following kstatus so that
// `kubectl wait --for=condition=Ready` and health checks understand them.
const (
	// ConditionReady is True when the object is in the state its spec asks for.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the controller is still making progress.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the controller cannot go on without a human
	// (bad configuration, a missing secret); it stops retrying until the spec changes.
	ConditionStalled = "Stalled"
)

// Labels homeostat puts on everything it renders.
const (
	// LabelName carries the name of the high-level object a child belongs to.
	LabelName = "app.kubernetes.io/name"
	// LabelManagedBy is always "homeostat" on rendered objects.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "homeostat"
)

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the referenced object.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// SecretKeySelector points at one key of a Secret in the same namespace.
type SecretKeySelector struct {
	// Secret is the name of the Secret.
	// +kubebuilder:validation:MinLength=1
	Secret string `json:"secret"`
	// Key is the key inside the Secret's data.
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
}

// Resources is the CPU and memory a container asks for. The same values are
// used as requests and, for memory, as the limit, so a pod is never
// overcommitted on memory (the usual cause of surprise OOM kills).
type Resources struct {
	// CPU request, for example "250m".
	// +optional
	CPU string `json:"cpu,omitempty"`
	// Memory request and limit, for example "256Mi".
	// +optional
	Memory string `json:"memory,omitempty"`
}
