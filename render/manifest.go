package render

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
)

// identity is what makes a manifest unique in a cluster, plus its version.
type identity struct {
	group, version, kind, namespace, name string
}

// checkManifest checks what every manifest needs to be applied: apiVersion,
// kind and metadata.name (a namespace, when given, must be a valid name).
func checkManifest(d *document) (identity, []Problem) {
	c := checker{d: d}
	var id identity
	apiVersion, ok := stringField(d.obj, "apiVersion")
	switch {
	case !ok:
		c.add(field("apiVersion"), "must be a string")
	case apiVersion == "":
		c.add(field("apiVersion"), "missing apiVersion")
	default:
		gv, err := schema.ParseGroupVersion(apiVersion)
		if err != nil {
			c.add(field("apiVersion"), "%q is not a group/version such as apps/v1", apiVersion)
		}
		id.group, id.version = gv.Group, gv.Version
	}
	kind, ok := stringField(d.obj, "kind")
	switch {
	case !ok:
		c.add(field("kind"), "must be a string")
	case kind == "":
		c.add(field("kind"), "missing kind")
	}
	id.kind = kind

	md, isMap := d.obj["metadata"].(map[string]interface{})
	if _, present := d.obj["metadata"]; present && !isMap {
		c.add(field("metadata"), "must be an object")
		return id, c.problems
	}
	name, ok := stringField(md, "name")
	switch {
	case !ok:
		c.add(field("metadata", "name"), "must be a string")
	case name == "":
		c.add(field("metadata", "name"), "missing metadata.name")
	}
	id.name = name
	ns, ok := stringField(md, "namespace")
	switch {
	case !ok:
		c.add(field("metadata", "namespace"), "must be a string")
	case ns != "":
		c.errs(field("metadata", "namespace"), ns, validation.IsDNS1123Label(ns))
	}
	id.namespace = ns
	return id, c.problems
}

// stringField reads a string field; absent and null read as "", other types
// as not ok.
func stringField(m map[string]interface{}, key string) (string, bool) {
	v, present := m[key]
	if !present || v == nil {
		return "", true
	}
	s, ok := v.(string)
	return s, ok
}

// plainObject is a manifest rendered as it is written.
func plainObject(d *document) Object {
	return Object{Object: &unstructured.Unstructured{Object: d.obj}, Source: d.src}
}
