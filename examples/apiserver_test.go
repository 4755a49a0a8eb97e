// Package examples is a checked-in example repository; this test proves, against
// a real kube-apiserver with homeostat's CRDs, that what it renders is valid,
// and that render defaults the homeostat kinds exactly as the CRDs do.
package examples

import (
	"context"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/render"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// Every object rendered from this folder is created, in render's order, in a
// real API server: Namespaces exist before their objects, CRD schemas accept
// the homeostat kinds, and the built-in kinds pass the server's validation.
func TestExamplesAreAcceptedByTheAPIServer(t *testing.T) {
	objs, problems := render.Render(os.DirFS("."))
	for _, p := range problems {
		t.Error(p.Error())
	}
	if len(objs) == 0 {
		t.Fatal("examples/ rendered nothing")
	}
	ctx := context.Background()
	// Strict, as server-side apply always is: an unknown field fails.
	strict := client.WithFieldValidation(env.Client, metav1.FieldValidationStrict)
	for _, o := range objs {
		u := o.Object.DeepCopy()
		if err := strict.Create(ctx, u); err != nil {
			t.Errorf("%s: create %s %s: %v", o.Source, u.GetKind(), u.GetName(), err)
			continue
		}
		if u.GroupVersionKind().Group == v1alpha1.GroupVersion.Group {
			sameSpec(t, o.Object, u)
		}
	}
}

// minimal holds each homeostat kind with only what is required, and with
// every optional object that has defaults inside it present but empty.
const minimal = `apiVersion: v1
kind: Namespace
metadata: {name: defaults}
---
apiVersion: homeostat.dev/v1alpha1
kind: App
metadata: {name: app, namespace: defaults}
spec:
  image: nginx
  postgres: {name: db}
  autoscale: {max: 3}
  healthCheck: {path: /}
---
apiVersion: homeostat.dev/v1alpha1
kind: Postgres
metadata: {name: db, namespace: defaults}
spec:
  storage: {size: 1Gi}
  backup: {s3: {endpoint: 127.0.0.1:9000, bucket: b, secretRef: {name: s}}}
  tls: {issuer: {name: ca}}
---
apiVersion: homeostat.dev/v1alpha1
kind: Pipeline
metadata: {name: ci, namespace: defaults}
spec:
  repo: https://git.example.com/a.git
  notify: {webhook: {secretRef: {name: chat}}}
---
apiVersion: homeostat.dev/v1alpha1
kind: Sync
metadata: {name: sync, namespace: defaults}
spec:
  url: https://git.example.com/config.git
`

// The API server applies the CRDs' defaults to the minimal objects as they
// are written; render applies its own. Both must store the same spec, or a
// sync would fight the API server over every defaulted field.
func TestRenderDefaultsAreTheCRDDefaults(t *testing.T) {
	objs, problems := render.Render(fstest.MapFS{"minimal.yaml": {Data: []byte(minimal)}})
	for _, p := range problems {
		t.Fatal(p.Error())
	}
	rendered := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if o.Owner == nil {
			rendered[o.Object.GetKind()] = o.Object
		}
	}
	ctx := context.Background()
	for _, doc := range strings.Split(minimal, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(ctx, u); err != nil {
			t.Fatalf("create %s as written: %v", u.GetKind(), err)
		}
		if u.GroupVersionKind().Group != v1alpha1.GroupVersion.Group {
			continue
		}
		want, ok := rendered[u.GetKind()]
		if !ok {
			t.Fatalf("render did not return the %s", u.GetKind())
		}
		sameSpec(t, want, u)
	}
}

// sameSpec compares the spec render produced with the one the API server
// stored, through the Go type, so that "1m" and "1m0s" are the same duration.
func sameSpec(t *testing.T, rendered, stored *unstructured.Unstructured) {
	t.Helper()
	r, s := typed(t, rendered), typed(t, stored)
	if !equality.Semantic.DeepEqual(specOf(r), specOf(s)) {
		rb, _ := yaml.Marshal(rendered.Object["spec"])
		sb, _ := yaml.Marshal(stored.Object["spec"])
		t.Errorf("%s %s: render's spec differs from the API server's\nrendered:\n%s\nstored:\n%s", rendered.GetKind(), rendered.GetName(), rb, sb)
	}
}

func typed(t *testing.T, u *unstructured.Unstructured) runtime.Object {
	t.Helper()
	obj, err := env.Scheme.New(u.GroupVersionKind())
	if err != nil {
		t.Fatal(err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return obj
}

func specOf(o runtime.Object) interface{} {
	switch x := o.(type) {
	case *v1alpha1.App:
		return x.Spec
	case *v1alpha1.Postgres:
		return x.Spec
	case *v1alpha1.Pipeline:
		return x.Spec
	case *v1alpha1.Sync:
		return x.Spec
	case *v1alpha1.Backup:
		return x.Spec
	}
	return o
}
