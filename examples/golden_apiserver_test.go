package examples

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

var docSeparator = regexp.MustCompile(`(?m)^---$`)

// What render prints for every good golden case (render/testdata/*/want.yaml:
// every App variant's children, Postgres with backup and bootstrap, Pipeline
// with notifications, Sync, kustomize output, CRDs and their objects) is
// accepted by a real API server with strict field validation, CEL rules
// included. Each case gets its own namespaces ("<case>-<namespace>"), so the
// cases cannot collide.
func TestGoldenRendersAreAcceptedByTheAPIServer(t *testing.T) {
	files, err := filepath.Glob("../render/testdata/*/want.yaml")
	if err != nil || len(files) < 10 {
		t.Fatalf("golden outputs not found under ../render/testdata (%d files, err %v)", len(files), err)
	}
	strict := client.WithFieldValidation(env.Client, metav1.FieldValidationStrict)
	for _, f := range files {
		name := filepath.Base(filepath.Dir(f))
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, doc := range docSeparator.Split(string(data), -1) {
				if strings.TrimSpace(doc) == "" {
					continue
				}
				u := &unstructured.Unstructured{}
				if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				createIsolated(t, strict, name, u)
			}
		})
	}
}

// createIsolated creates an object in its case's copy of its namespace.
func createIsolated(t *testing.T, c client.Client, prefix string, u *unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	isolate := func(ns string) string {
		return strings.Trim((prefix + "-" + ns)[:min(63, len(prefix)+1+len(ns))], "-")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := func() error {
			if u.GetKind() == "Namespace" && u.GroupVersionKind().Group == "" {
				u.SetName(isolate(u.GetName()))
				return ignoreExists(c.Create(ctx, u))
			}
			namespaced, err := c.IsObjectNamespaced(u)
			if err != nil {
				return err
			}
			if namespaced {
				ns := u.GetNamespace()
				if ns == "" {
					ns = "default"
				}
				u.SetNamespace(isolate(ns))
				nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: u.GetNamespace()}}
				if err := ignoreExists(c.Create(ctx, nsObj)); err != nil {
					return err
				}
			}
			return c.Create(ctx, u)
		}()
		// A kind whose CRD was created a moment ago is served once the
		// CRD is established; until then the client finds no match.
		if meta.IsNoMatchError(err) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Errorf("create %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		return
	}
}

func ignoreExists(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
