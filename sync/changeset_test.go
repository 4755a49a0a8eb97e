package sync

import (
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"homeostat.dev/homeostat/internal/golden"
)

func sampleChangeSet() ChangeSet {
	ref := func(kind, ns, name string) Ref { return Ref{Version: "v1", Kind: kind, Namespace: ns, Name: name} }
	return ChangeSet{Changes: []Change{
		{Ref: ref("ConfigMap", "shop", "settings"), Action: Unchanged},
		{Ref: ref("Service", "shop", "web"), Action: Configured, Drift: true},
		{Ref: Ref{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "shop", Name: "web"}, Action: Configured},
		{Ref: ref("Namespace", "", "shop"), Action: Created},
		{Ref: ref("ConfigMap", "shop", "old"), Action: Pruned},
		{Ref: ref("Secret", "shop", "db"), Action: Failed, Err: "admission webhook denied the request"},
	}}
}

func TestChangeSetPrints(t *testing.T) {
	cs := sampleChangeSet()
	var api []string
	for _, c := range cs.API() {
		api = append(api, c.Object+" "+c.Action)
	}
	golden.Assert(t, filepath.Join("testdata", "changeset/string.golden"), []byte(cs.String()+"\n--- API\n"+strings.Join(api, "\n")+"\n"))
	inv := cs.Inventory()
	if len(inv) != 4 || inv.Contains(Ref{Kind: "ConfigMap", Namespace: "shop", Name: "old"}) {
		t.Fatalf("inventory must leave out pruned and failed objects: %v", inv)
	}
	if got := inv.Minus(Inventory{{Kind: "Namespace", Name: "shop"}}); len(got) != 3 {
		t.Fatalf("Minus: %v", got)
	}
}

func TestDiffMasksSecretsAndDropsServerFields(t *testing.T) {
	secret := func(rv string, data map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Secret",
			"metadata": map[string]any{"name": "db", "namespace": "shop", "resourceVersion": rv, "uid": "u-1",
				"managedFields": []any{map[string]any{"manager": "homeostat"}},
				"annotations":   map[string]any{AnnotationHash: "abc"}},
			"data": data,
		}}
	}
	live := secret("7", map[string]any{"password": "aHVudGVyMg==", "user": "YWRh", "old": "eA=="})
	desired := secret("", map[string]any{"password": "c3dvcmRmaXNo", "user": "YWRh", "new": "eQ=="})
	d, err := Diff(live, desired)
	if err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, filepath.Join("testdata", "changeset/secret-diff.golden"), []byte(d))
	for _, leak := range []string{"aHVudGVyMg", "c3dvcmRmaXNo", "YWRh", "managedFields", "resourceVersion", AnnotationHash} {
		if strings.Contains(d, leak) {
			t.Errorf("diff shows %q:\n%s", leak, d)
		}
	}
}
