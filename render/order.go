package render

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// builtinClusterScoped are the cluster-scoped kinds of Kubernetes itself (and
// cert-manager's ClusterIssuer, which Apps name). Kinds of CRDs in the tree
// add to these; any other kind is taken to be namespaced.
var builtinClusterScoped = map[schema.GroupKind]bool{
	{Kind: "Namespace"}:        true,
	{Kind: "Node"}:             true,
	{Kind: "PersistentVolume"}: true,
	{Kind: "ComponentStatus"}:  true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:                         true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:                  true,
	{Group: "storage.k8s.io", Kind: "StorageClass"}:                                   true,
	{Group: "storage.k8s.io", Kind: "CSIDriver"}:                                      true,
	{Group: "storage.k8s.io", Kind: "CSINode"}:                                        true,
	{Group: "storage.k8s.io", Kind: "VolumeAttachment"}:                               true,
	{Group: "storage.k8s.io", Kind: "VolumeAttributesClass"}:                          true,
	{Group: "scheduling.k8s.io", Kind: "PriorityClass"}:                               true,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:                 true,
	{Group: "apiregistration.k8s.io", Kind: "APIService"}:                             true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:     true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}:   true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicy"}:        true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicyBinding"}: true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicy"}:          true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicyBinding"}:   true,
	{Group: "networking.k8s.io", Kind: "IngressClass"}:                                true,
	{Group: "networking.k8s.io", Kind: "IPAddress"}:                                   true,
	{Group: "networking.k8s.io", Kind: "ServiceCIDR"}:                                 true,
	{Group: "node.k8s.io", Kind: "RuntimeClass"}:                                      true,
	{Group: "certificates.k8s.io", Kind: "CertificateSigningRequest"}:                 true,
	{Group: "certificates.k8s.io", Kind: "ClusterTrustBundle"}:                        true,
	{Group: "flowcontrol.apiserver.k8s.io", Kind: "FlowSchema"}:                       true,
	{Group: "flowcontrol.apiserver.k8s.io", Kind: "PriorityLevelConfiguration"}:       true,
	{Group: "resource.k8s.io", Kind: "DeviceClass"}:                                   true,
	{Group: "cert-manager.io", Kind: "ClusterIssuer"}:                                 true,
}

var crdKind = schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}

// scopes says which kinds are cluster-scoped.
type scopes map[schema.GroupKind]bool

// clusterScopes adds the kinds of cluster-scoped CRDs in the tree to the
// built-in ones.
func clusterScopes(units []unit) scopes {
	s := scopes{}
	for gk := range builtinClusterScoped {
		s[gk] = true
	}
	for _, u := range units {
		if u.id.group != crdKind.Group || u.id.kind != crdKind.Kind {
			continue
		}
		obj := u.objects[0].Object.Object
		group, _, _ := unstructured.NestedString(obj, "spec", "group")
		kind, _, _ := unstructured.NestedString(obj, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(obj, "spec", "scope")
		if scope == "Cluster" {
			s[schema.GroupKind{Group: group, Kind: kind}] = true
		}
	}
	return s
}

// dropClusterNamespaces removes metadata.namespace from cluster-scoped
// objects, as kubectl does: the API server has no namespace to put them in,
// and a client that used it would ask for a path that does not exist.
func dropClusterNamespaces(units []unit, s scopes) {
	for i := range units {
		u := &units[i]
		if !s[schema.GroupKind{Group: u.id.group, Kind: u.id.kind}] || u.id.namespace == "" {
			continue
		}
		u.id.namespace = ""
		unstructured.RemoveNestedField(u.objects[0].Object.Object, "metadata", "namespace")
	}
}

// objectKey identifies an object in a cluster: version does not matter (one
// object is served at every version), namespace does not for cluster-scoped
// kinds.
type objectKey struct {
	group, kind, namespace, name string
}

func keyOf(o *unstructured.Unstructured, s scopes) objectKey {
	gk := o.GroupVersionKind().GroupKind()
	k := objectKey{group: gk.Group, kind: gk.Kind, namespace: o.GetNamespace(), name: o.GetName()}
	if s[gk] {
		k.namespace = ""
	}
	return k
}

func (k objectKey) String() string {
	kind := k.kind
	if k.group != "" {
		kind += "." + k.group
	}
	if k.namespace != "" {
		return fmt.Sprintf("%s %s/%s", kind, k.namespace, k.name)
	}
	return fmt.Sprintf("%s %s", kind, k.name)
}

// duplicates reports every object defined more than once, at the later
// definition, naming the first.
func duplicates(units []unit, s scopes) []Problem {
	first := map[objectKey]Object{}
	var problems []Problem
	for _, u := range units {
		for _, o := range u.objects {
			k := keyOf(o.Object, s)
			prev, dup := first[k]
			if !dup {
				first[k] = o
				continue
			}
			problems = append(problems, Problem{
				File:    o.Source.File,
				Line:    o.Source.Line,
				Message: fmt.Sprintf("%s is defined twice: %s and %s", k, describe(prev), describe(o)),
			})
		}
	}
	return problems
}

// describe names where an object comes from, including the high-level object
// that rendered it.
func describe(o Object) string {
	if o.Owner != nil {
		return fmt.Sprintf("%s (rendered from %s %s)", o.Source, o.Owner.Kind, o.Owner.Name)
	}
	return o.Source.String()
}

// tier orders what must exist before the rest: CRDs before their objects,
// Namespaces before what is in them.
func tier(id identity, s scopes) int {
	gk := schema.GroupKind{Group: id.group, Kind: id.kind}
	switch {
	case gk == crdKind:
		return 0
	case gk == schema.GroupKind{Kind: "Namespace"}:
		return 1
	case s[gk]:
		return 2
	}
	return 3
}

func sortUnits(units []unit, s scopes) {
	sort.SliceStable(units, func(i, j int) bool {
		a, b := units[i].id, units[j].id
		if ta, tb := tier(a, s), tier(b, s); ta != tb {
			return ta < tb
		}
		if ta := tier(a, s); ta == 3 && a.namespace != b.namespace {
			return a.namespace < b.namespace
		}
		if a.group != b.group {
			return a.group < b.group
		}
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		if a.name != b.name {
			return a.name < b.name
		}
		return a.namespace < b.namespace
	})
}
