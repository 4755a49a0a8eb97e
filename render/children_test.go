package render

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// childTypes are the Kubernetes types an App renders to.
var childTypes = map[schema.GroupVersionKind]reflect.Type{
	appsv1.SchemeGroupVersion.WithKind("Deployment"):                     reflect.TypeOf(appsv1.Deployment{}),
	corev1.SchemeGroupVersion.WithKind("Service"):                        reflect.TypeOf(corev1.Service{}),
	networkingv1.SchemeGroupVersion.WithKind("Ingress"):                  reflect.TypeOf(networkingv1.Ingress{}),
	autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"): reflect.TypeOf(autoscalingv2.HorizontalPodAutoscaler{}),
}

// Every child of every golden case decodes strictly into its Kubernetes Go
// type: no misspelt field, no value of the wrong type. (The API server
// checks the same when sync applies them; this finds it without one.)
func TestChildrenAreValidKubernetesObjects(t *testing.T) {
	cases, _ := filepath.Glob("testdata/*/in")
	children := 0
	for _, in := range cases {
		objs, _ := Render(os.DirFS(in))
		for _, o := range objs {
			if o.Owner == nil {
				continue
			}
			children++
			gvk := o.Object.GroupVersionKind()
			typ, ok := childTypes[gvk]
			if !ok {
				t.Errorf("%s: child of unexpected kind %s", in, gvk)
				continue
			}
			d := &document{src: o.Source, obj: o.Object.Object}
			problems, _ := decodeStrict(d, reflect.New(typ).Interface())
			for _, p := range problems {
				t.Errorf("%s: %s %s: %s", in, gvk.Kind, o.Object.GetName(), p.Error())
			}
			if o.Object.GetNamespace() != o.Owner.Namespace || o.Object.GetLabels()["app.kubernetes.io/name"] != o.Owner.Name {
				t.Errorf("%s: %s %s is not in its owner's namespace or lacks its name label", in, gvk.Kind, o.Object.GetName())
			}
		}
	}
	if children < 20 {
		t.Fatalf("only %d children in the golden cases; the test proves little", children)
	}
}
