// Package render turns a repository tree into the Kubernetes objects it
// describes. It is pure: it reads files, never a cluster, so the same tree
// always renders to the same objects, in the same order, on a laptop, in a
// pull request check and in the controller.
package render

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Source is where an object was defined: a file relative to the rendered
// root, and the line its document starts on (1-based; 0 when unknown, as for
// objects built by kustomize).
type Source struct {
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
}

// String is FILE:LINE, or FILE when the line is unknown.
func (s Source) String() string {
	if s.Line > 0 {
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	}
	return s.File
}

// OwnerRef names the high-level object (App, Postgres, Pipeline) a rendered
// child belongs to. Render cannot set a real ownerReference, which needs the
// owner's UID; sync applies the owner first and then links the child to it.
type OwnerRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// Object is one rendered Kubernetes object.
type Object struct {
	// Object is the manifest as it will be applied.
	Object *unstructured.Unstructured
	// Source is the file (and line) it came from; children of a high-level
	// object carry their parent's source.
	Source Source
	// Owner is set on children of a high-level object.
	Owner *OwnerRef
}

// Problem is one reason a tree cannot be rendered. Rendering reports every
// problem it finds, not just the first, so a pull request shows them all.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Error formats the problem as FILE:LINE: message, the form editors and CI
// annotations understand.
func (p Problem) Error() string {
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	if p.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, p.Field, p.Message)
	}
	return fmt.Sprintf("%s: %s", loc, p.Message)
}
