//go:generate sh -c "cd ../.. && go run ./hack/openapi render/schema/builtin.json.gz"

// Package schema checks rendered objects against the OpenAPI schema of
// their kind, offline: what the API server would refuse (unknown fields,
// wrong types, missing required fields, enum and pattern violations) is
// found before a merge, each as FILE:LINE.
//
// Built-in kinds use the schemas the kube-apiserver homeostat is built
// against serves, embedded in the binary (builtin.json.gz, written by
// `make schemas`); custom kinds use CRDs, from the rendered set itself or
// added by the caller. The checking is apiextensions-apiserver's own: its
// structural pruning finds unknown fields, as the API server's strict field
// validation does, and its kube-openapi schema validator the rest. Kinds with
// no schema are reported as skipped, never passed silently.
package schema

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
)

//go:embed builtin.json.gz
var builtinData []byte

// builtinVersion is the Kubernetes version of builtinData, kept apart so
// that naming it (in --help) does not decompress the schemas.
//
//go:embed builtin.version
var builtinVersion string

// builtinSet is the embedded schemas: components/schemas of each built-in
// group-version ("apis/apps/v1"), descriptions stripped.
type builtinSet struct {
	KubernetesVersion string                               `json:"kubernetesVersion"`
	Schemas           map[string]map[string]map[string]any `json:"schemas"`
}

var (
	loadOnce sync.Once
	builtin  builtinSet
	// builtinKinds maps a GVK to its group-version and schema name.
	builtinKinds map[k8sschema.GroupVersionKind][2]string
	loadErr      error
)

func loadBuiltin() {
	zr, err := gzip.NewReader(bytes.NewReader(builtinData))
	if err != nil {
		loadErr = fmt.Errorf("embedded schemas: %w", err)
		return
	}
	if err := json.NewDecoder(zr).Decode(&builtin); err != nil {
		loadErr = fmt.Errorf("embedded schemas: %w", err)
		return
	}
	builtinKinds = map[k8sschema.GroupVersionKind][2]string{}
	for gv, schemas := range builtin.Schemas {
		for name, s := range schemas {
			gvks, _ := s["x-kubernetes-group-version-kind"].([]any)
			for _, g := range gvks {
				m, _ := g.(map[string]any)
				gvk := k8sschema.GroupVersionKind{Group: str(m["group"]), Version: str(m["version"]), Kind: str(m["kind"])}
				// Each kind's own group-version document defines it; others
				// (meta/v1's WatchEvent, DeleteOptions) only mention it.
				if gvPath(gvk) == gv {
					builtinKinds[gvk] = [2]string{gv, name}
				}
			}
		}
	}
}

func str(v any) string { s, _ := v.(string); return s }

func gvPath(gvk k8sschema.GroupVersionKind) string {
	if gvk.Group == "" {
		return "api/" + gvk.Version
	}
	return "apis/" + gvk.Group + "/" + gvk.Version
}

// KubernetesVersion is the version of the embedded built-in schemas.
func KubernetesVersion() string {
	return strings.TrimSpace(builtinVersion)
}

// kind is the compiled schema of one kind.
type kind struct {
	structural *structuralschema.Structural
	validator  validation.SchemaValidator
	builtin    bool
}

// Validator holds the schemas of the kinds it knows. It is not safe for
// concurrent use.
type Validator struct {
	kinds map[k8sschema.GroupVersionKind]*kind
}

// New returns a Validator that knows the built-in kinds.
func New() (*Validator, error) {
	loadOnce.Do(loadBuiltin)
	if loadErr != nil {
		return nil, loadErr
	}
	return &Validator{kinds: map[k8sschema.GroupVersionKind]*kind{}}, nil
}

// AddCRD learns the kinds a CustomResourceDefinition defines, one per
// version with a schema.
func (v *Validator) AddCRD(u *unstructured.Unstructured) error {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &crd); err != nil {
		return fmt.Errorf("CustomResourceDefinition %s: %w", u.GetName(), err)
	}
	for _, ver := range crd.Spec.Versions {
		s := ver.Schema
		if s == nil || s.OpenAPIV3Schema == nil {
			continue
		}
		k, err := compile(s.OpenAPIV3Schema)
		if err != nil {
			return fmt.Errorf("CustomResourceDefinition %s, version %s: %w", crd.Name, ver.Name, err)
		}
		v.kinds[k8sschema.GroupVersionKind{Group: crd.Spec.Group, Version: ver.Name, Kind: crd.Spec.Names.Kind}] = k
	}
	return nil
}

// schemaFor finds (and compiles on first use) the schema of a kind; nil
// when none is known.
func (v *Validator) schemaFor(gvk k8sschema.GroupVersionKind) (*kind, error) {
	if k, ok := v.kinds[gvk]; ok {
		return k, nil
	}
	ref, ok := builtinKinds[gvk]
	if !ok {
		return nil, nil
	}
	inlined := inline(builtin.Schemas[ref[0]], ref[1], nil)
	data, err := json.Marshal(inlined)
	if err != nil {
		return nil, err
	}
	var props apiextensionsv1.JSONSchemaProps
	if err := json.Unmarshal(data, &props); err != nil {
		return nil, fmt.Errorf("schema of %s: %w", gvk, err)
	}
	k, err := compile(&props)
	if err != nil {
		return nil, fmt.Errorf("schema of %s: %w", gvk, err)
	}
	k.builtin = true
	v.kinds[gvk] = k
	return k, nil
}

func compile(v1props *apiextensionsv1.JSONSchemaProps) (*kind, error) {
	var props apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v1props, &props, nil); err != nil {
		return nil, err
	}
	s, err := structuralschema.NewStructural(&props)
	if err != nil {
		return nil, err
	}
	val, _, err := validation.NewSchemaValidator(&props)
	if err != nil {
		return nil, err
	}
	return &kind{structural: s, validator: val}, nil
}

// Violation is one way an object breaks its schema.
type Violation struct {
	// Field is the path of the field at fault, as the API server spells
	// it: "spec.template.spec.containers[0].image".
	Field   string
	Message string
}

// Validate checks one object. known is false when no schema of its kind is
// known (and nothing was checked).
func (v *Validator) Validate(u *unstructured.Unstructured) (vs []Violation, known bool, err error) {
	k, err := v.schemaFor(u.GroupVersionKind())
	if err != nil || k == nil {
		return nil, false, err
	}
	obj := runtime.DeepCopyJSON(u.Object)
	if k.builtin {
		// The API server decodes null as the zero value for built-in
		// kinds (kubectl writes creationTimestamp: null); only CRDs
		// distinguish null.
		dropNulls(obj)
	}
	unknown := pruning.PruneWithOptions(runtime.DeepCopyJSON(obj), k.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, p := range unknown {
		vs = append(vs, Violation{Field: p, Message: fmt.Sprintf("unknown field %q", lastKey(p))})
	}
	for _, e := range validation.ValidateCustomResource(nil, obj, k.validator) {
		vs = append(vs, Violation{Field: e.Field, Message: e.ErrorBody()})
	}
	return vs, true, nil
}

// lastKey is "foo" of "spec.template.foo".
func lastKey(p string) string {
	return p[strings.LastIndex(p, ".")+1:]
}

func dropNulls(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if e == nil {
				delete(t, k)
				continue
			}
			dropNulls(e)
		}
	case []any:
		for _, e := range t {
			dropNulls(e)
		}
	}
}
