package v1alpha1

// Verification modes of a Sync's spec.verify.
const (
	// VerifyHEAD requires the commit applied to be signed by a trusted key.
	VerifyHEAD = "HEAD"
	// VerifyTag requires the annotated tag spec.ref.tag names to be signed.
	VerifyTag = "Tag"
	// VerifyTagAndHEAD requires both.
	VerifyTagAndHEAD = "TagAndHEAD"
)

// GitVerification makes a Sync apply only revisions signed by a trusted
// OpenPGP key.
type GitVerification struct {
	// Mode is what must be signed: HEAD (the commit), Tag (the annotated
	// tag spec.ref.tag names) or TagAndHEAD.
	// +kubebuilder:validation:Enum=HEAD;Tag;TagAndHEAD
	// +kubebuilder:default=HEAD
	// +optional
	Mode string `json:"mode,omitempty"`
	// SecretRef names a Secret in the Sync's namespace whose values are
	// ASCII-armored OpenPGP public keys; a signature by any of them is
	// trusted.
	SecretRef LocalObjectReference `json:"secretRef"`
}

// SyncReference names another Sync.
type SyncReference struct {
	// Name of the Sync.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace of the Sync; the depending Sync's own when unset.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}
