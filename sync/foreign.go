package sync

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
)

// managedByCluster are objects the cluster itself puts in every Namespace
// or derives from others; they do not keep a Namespace from being pruned.
var managedByCluster = map[string]bool{
	"/ServiceAccount/default":     true,
	"/ConfigMap/kube-root-ca.crt": true,
}

// ignoredResources are kinds whose objects are records or derived data
// (events, endpoints), never something a person would miss.
var ignoredResources = map[schema.GroupResource]bool{
	{Resource: "events"}: true, {Group: "events.k8s.io", Resource: "events"}: true,
	{Resource: "endpoints"}: true, {Group: "discovery.k8s.io", Resource: "endpointslices"}: true,
	{Group: "coordination.k8s.io", Resource: "leases"}: true,
}

// foreignObjects lists objects in namespace ns that this Sync did not
// apply: not carrying its labels, not owned by another object, and not put
// there by the cluster itself. Kinds it may not list count as foreign (it
// cannot tell), so a Namespace is kept rather than deleted blind.
func (e *Engine) foreignObjects(ctx context.Context, t Target, ns string) ([]string, error) {
	dc, err := discovery.NewDiscoveryClientForConfigAndClient(e.cfg, e.httpClient)
	if err != nil {
		return nil, err
	}
	mc, err := metadata.NewForConfigAndClient(e.cfg, e.httpClient)
	if err != nil {
		return nil, err
	}
	lists, err := dc.ServerPreferredNamespacedResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discover kinds to check namespace %s is empty: %w", ns, err)
	}
	var out []string
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, res := range l.APIResources {
			gr := schema.GroupResource{Group: gv.Group, Resource: res.Name}
			if ignoredResources[gr] || !hasVerb(res.Verbs, "list") {
				continue
			}
			objs, err := mc.Resource(gv.WithResource(res.Name)).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				out = append(out, fmt.Sprintf("%s (cannot list: %s)", res.Kind, describe(err)))
				continue
			}
			for _, o := range objs.Items {
				l := o.GetLabels()
				ours := l[LabelSync] == t.Name && l[LabelSyncNamespace] == t.Namespace
				if ours || len(o.GetOwnerReferences()) > 0 || managedByCluster[gv.Group+"/"+res.Kind+"/"+o.GetName()] {
					continue
				}
				out = append(out, res.Kind+"/"+ns+"/"+o.GetName())
			}
		}
	}
	return out, nil
}

func hasVerb(verbs []string, v string) bool {
	for _, x := range verbs {
		if x == v {
			return true
		}
	}
	return false
}
