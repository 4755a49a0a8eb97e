package schema

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"homeostat.dev/homeostat/internal/golden"
	"homeostat.dev/homeostat/render"
)

// A Deployment with a misspelled field, a wrong type, a missing required
// field and a value outside its enum, and custom resources that break their
// CRD's schema (enum, pattern, minimum, required, unknown field), are all
// caught offline at their FILE:LINE; valid objects (int-or-string ports,
// quantities, kubectl's creationTimestamp: null) pass; a kind with no
// schema is listed as skipped.
func TestCheckCatchesWhatTheServerWouldRefuse(t *testing.T) {
	fsys := os.DirFS("testdata/repo")
	objs, problems := render.Render(fsys)
	if len(problems) > 0 {
		t.Fatalf("render: %v", problems)
	}
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	problems, skipped := v.Check(fsys, objs)
	var b bytes.Buffer
	for _, p := range problems {
		b.WriteString(p.Error() + "\n")
	}
	b.WriteString("skipped: " + strings.Join(skipped, ", ") + "\n")
	golden.Assert(t, "testdata/want.txt", b.Bytes())
	for _, p := range problems {
		if p.File == "good.yaml" {
			t.Errorf("a valid object was refused: %s", p.Error())
		}
	}
}

// The embedded set is the Kubernetes version homeostat is built against.
func TestEmbeddedSchemasKnowTheBuiltInKinds(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	objs, problems := render.Render(os.DirFS("testdata/repo"))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	for _, o := range objs {
		if o.Object.GroupVersionKind().Group == "cert-manager.io" || o.Object.GroupVersionKind().Group == "example.com" {
			continue
		}
		if _, known, err := v.Validate(o.Object); err != nil || !known {
			t.Errorf("%s: known %v, err %v", o.Object.GroupVersionKind(), known, err)
		}
	}
	if KubernetesVersion() == "" || KubernetesVersion() != builtin.KubernetesVersion {
		t.Errorf("builtin.version says %q, the embedded set %q: run make schemas", KubernetesVersion(), builtin.KubernetesVersion)
	}
}
