package sync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"homeostat.dev/homeostat/render"
)

// denyPolicy is a CEL ValidatingAdmissionPolicy, bound to namespaces
// labelled vap=deny, that refuses ConfigMaps holding the key "forbidden".
const denyPolicy = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: no-forbidden-key
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["configmaps"]
  validations:
  - expression: "!has(object.data) || !('forbidden' in object.data)"
    message: "policy no-forbidden-key: ConfigMaps may not hold the key forbidden"
`

const denyBinding = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: no-forbidden-key
spec:
  policyName: no-forbidden-key
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {vap: deny}
`

const policyMessage = "ConfigMaps may not hold the key forbidden"

// installDenyPolicy installs the policy once and waits until the API server
// enforces it (policies compile asynchronously).
func installDenyPolicy(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, doc := range []string{denyPolicy, denyBinding} {
		o := fromYAML(t, "policy.yaml", doc).Object
		if err := env.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	ns := namespace(t, "vap-probe")
	labelNamespace(t, ns)
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns}, Data: map[string]string{"forbidden": "x"}}
	deadline := time.Now().Add(time.Minute)
	for {
		err := env.Client.Create(ctx, probe, client.DryRunAll)
		if err != nil && strings.Contains(err.Error(), policyMessage) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy is not enforced after a minute (last answer: %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func labelNamespace(t *testing.T, ns string) {
	t.Helper()
	var n corev1.Namespace
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: ns}, &n); err != nil {
		t.Fatal(err)
	}
	n.Labels["vap"] = "deny"
	if err := env.Client.Update(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
}

func deploymentObj(name, ns, app string) render.Object {
	doc := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, namespace: %s}
spec:
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec: {containers: [{name: c, image: nginx}]}
`, name, ns, app, app)
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		panic(err)
	}
	return render.Object{Object: u, Source: render.Source{File: "apps/" + name + ".yaml", Line: 3}}
}

// A revision the API server refuses in one object (a CEL admission policy)
// writes nothing, and the error names the object's FILE:LINE and the
// policy's own message.
func TestRefusedRevisionWritesNothing(t *testing.T) {
	installDenyPolicy(t)
	ctx := context.Background()
	ns := namespace(t, "refuse-existing")
	labelNamespace(t, ns)
	e, w := newEngine(t)
	tg := Target{Name: "s", Namespace: ns, DefaultNamespace: ns}
	good := configMap("good", map[string]any{"k": "1"})
	if _, err := e.Apply(ctx, tg, []render.Object{good}, nil); err != nil {
		t.Fatal(err)
	}
	bad := configMap("bad", map[string]any{"forbidden": "yes"})
	bad.Source.Line = 7
	changed := configMap("good", map[string]any{"k": "2"})
	w.reset()
	cs, err := e.Apply(ctx, tg, []render.Object{deploymentObj("web", ns, "web"), changed, bad}, Inventory{RefOf(good.Object)})
	var refused *RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("want a RefusedError, got %v", err)
	}
	for _, want := range []string{"apps/bad.yaml:7", "ConfigMap/" + ns + "/bad", policyMessage} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if n := w.n.Load(); n != 0 {
		t.Fatalf("a refused revision sent %d writes: %v", n, w.paths)
	}
	if cs.Count(Failed) != 1 || len(cs.Inventory()) != 0 {
		t.Fatalf("want only the refused object in the change set, got\n%s", cs)
	}
	var cm corev1.ConfigMap
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "good"}, &cm); err != nil || cm.Data["k"] != "1" {
		t.Fatalf("good changed by a refused revision: %v %v", cm.Data, err)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment"}}); !apierrors.IsNotFound(err) {
		t.Fatalf("the Deployment of a refused revision exists: %v", err)
	}
}

// Objects in a Namespace the same revision creates can only be dry-run once
// it exists: when one is refused, the Namespace is deleted again and
// nothing else was written.
func TestRefusedObjectInNewNamespaceUndoesTheNamespace(t *testing.T) {
	installDenyPolicy(t)
	ctx := context.Background()
	e, w := newEngine(t)
	nsName := fmt.Sprintf("refuse-new-%d", time.Now().UnixNano()%100000)
	nsObj := fromYAML(t, "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: "+nsName+"\n  labels: {vap: deny}\n")
	bad := configMap("bad", map[string]any{"forbidden": "yes"})
	bad.Object.SetNamespace(nsName)
	tg := Target{Name: "s", Namespace: "default", DefaultNamespace: "default"}
	_, err := e.Apply(ctx, tg, []render.Object{nsObj, deploymentObj("web", nsName, "web"), bad}, nil)
	if err == nil || !strings.Contains(err.Error(), policyMessage) || !strings.Contains(err.Error(), "apps/bad.yaml:1") {
		t.Fatalf("want the policy's refusal naming apps/bad.yaml:1, got %v", err)
	}
	var n corev1.Namespace
	err = env.Client.Get(ctx, client.ObjectKey{Name: nsName}, &n)
	if err == nil && n.DeletionTimestamp.IsZero() {
		t.Fatalf("the new Namespace of a refused revision was kept")
	}
	for _, p := range w.paths {
		if !strings.Contains(p, "/namespaces/"+nsName) || strings.Contains(p, "deployments") || strings.Contains(p, "configmaps") {
			t.Fatalf("a refused revision wrote more than its Namespace: %v", w.paths)
		}
	}
}

// A change to an immutable field fails naming the field and the opt-in,
// unless the object opts in (or the apply forces): then the object is
// deleted and created again.
func TestImmutableFieldRecreatesOnlyOnOptIn(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "immutable")
	e, _ := newEngine(t)
	tg := Target{Name: "s", Namespace: ns, DefaultNamespace: ns}
	cs, err := e.Apply(ctx, tg, []render.Object{deploymentObj("web", ns, "v1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	uid := liveUID(t, ns, "web")
	for _, tc := range []struct {
		name      string
		annotate  bool
		force     bool
		recreated bool
	}{
		{name: "no opt-in"},
		{name: "annotation", annotate: true, recreated: true},
		{name: "spec.force", force: true, recreated: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := deploymentObj("web", ns, "changed-"+strings.ReplaceAll(tc.name, " ", "-"))
			d.Object = d.Object.DeepCopy()
			d.Object.SetName("web")
			if tc.annotate {
				d.Object.SetAnnotations(map[string]string{AnnotationRecreate: "true"})
			}
			d.Object.Object["spec"].(map[string]any)["selector"] = map[string]any{"matchLabels": map[string]any{"app": "sel-" + tc.name[:2]}}
			d.Object.Object["spec"].(map[string]any)["template"].(map[string]any)["metadata"] = map[string]any{"labels": map[string]any{"app": "sel-" + tc.name[:2]}}
			got, err := e.ApplyWith(ctx, tg, []render.Object{d}, cs.Inventory(), ApplyOptions{Force: tc.force})
			if !tc.recreated {
				var refused *RefusedError
				if !errors.As(err, &refused) || !refused.Immutable() || !strings.Contains(err.Error(), "spec.selector") || !strings.Contains(err.Error(), AnnotationRecreate) {
					t.Fatalf("want an immutable-field refusal naming spec.selector and the annotation, got %v", err)
				}
				if liveUID(t, ns, "web") != uid {
					t.Fatal("the Deployment was re-created without opt-in")
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, got)
			}
			if len(got.Changes) != 1 || !got.Changes[0].Recreated || got.Changes[0].Action != Created {
				t.Fatalf("want web recreated, got\n%s", got)
			}
			now := liveUID(t, ns, "web")
			if now == uid {
				t.Fatal("the Deployment kept its UID: not re-created")
			}
			uid = now
		})
	}
}

func liveUID(t *testing.T, ns, name string) string {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment"}}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		t.Fatal(err)
	}
	return string(u.GetUID())
}
