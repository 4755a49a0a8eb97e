package sync

import (
	"context"
	"errors"
	"fmt"
	"sort"

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
// there by the cluster itself. It reads metadata only. It fails safe: a
// kind it may not list, a list that fails, or an API group discovery could
// not read counts as foreign ("cannot list"), so a Namespace is kept rather
// than deleted blind. It stops at a few findings: one is enough to keep it.
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
	out := undiscovered(err)
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			out = append(out, fmt.Sprintf("%s (cannot read its kinds: %s)", l.GroupVersion, err))
			continue
		}
		for _, res := range l.APIResources {
			gr := schema.GroupResource{Group: gv.Group, Resource: res.Name}
			if ignoredResources[gr] || !hasVerb(res.Verbs, "list") {
				continue
			}
			out = append(out, foreignOf(ctx, mc.Resource(gv.WithResource(res.Name)).Namespace(ns), t, gv.Group, res.Kind, ns)...)
			if len(out) >= foreignEnough {
				return out, nil
			}
		}
	}
	return out, nil
}

// foreignEnough is how many foreign objects are worth naming: the
// Namespace is kept at the first.
const foreignEnough = 3

// undiscovered names the API groups discovery failed to read (an
// aggregated API that is down): what they hold is unknown.
func undiscovered(err error) []string {
	if err == nil {
		return nil
	}
	var gerr *discovery.ErrGroupDiscoveryFailed
	if !errors.As(err, &gerr) {
		return []string{fmt.Sprintf("some kinds (cannot discover: %s)", err)}
	}
	var out []string
	for gv, e := range gerr.Groups {
		out = append(out, fmt.Sprintf("%s (cannot discover: %s)", gv, e))
	}
	sort.Strings(out)
	return out
}

// foreignOf lists one kind in ns page by page and names the objects of it
// the Sync did not apply; a kind that cannot be listed is named itself.
func foreignOf(ctx context.Context, ri metadata.ResourceInterface, t Target, group, kind, ns string) []string {
	var out []string
	opts := metav1.ListOptions{Limit: 500}
	for {
		objs, err := ri.List(ctx, opts)
		if err != nil {
			return append(out, fmt.Sprintf("%s (cannot list: %s)", kind, describe(err)))
		}
		for _, o := range objs.Items {
			l := o.GetLabels()
			ours := l[LabelSync] == t.Name && l[LabelSyncNamespace] == t.Namespace
			if ours || len(o.GetOwnerReferences()) > 0 || managedByCluster[group+"/"+kind+"/"+o.GetName()] {
				continue
			}
			out = append(out, kind+"/"+ns+"/"+o.GetName())
			if len(out) >= foreignEnough {
				return out
			}
		}
		if opts.Continue = objs.GetContinue(); opts.Continue == "" {
			return out
		}
	}
}

func hasVerb(verbs []string, v string) bool {
	for _, x := range verbs {
		if x == v {
			return true
		}
	}
	return false
}
