package deploy_test

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// The generated CRDs install into a real API server, apply their defaults,
// and reject invalid values with the validation the markers declare.
func TestCRDsAcceptValidObjectsAndDefaultThem(t *testing.T) {
	ctx := context.Background()
	app := &v1alpha1.App{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "default"},
		Spec:       v1alpha1.AppSpec{Image: "registry.example.com/acme/shop:1.4.2"},
	}
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatalf("create App: %v", err)
	}
	if app.Spec.Port != 8080 || app.Spec.Replicas == nil || *app.Spec.Replicas != 1 {
		t.Errorf("App defaults not applied: port=%d replicas=%v", app.Spec.Port, app.Spec.Replicas)
	}

	pg := &v1alpha1.Postgres{
		ObjectMeta: metav1.ObjectMeta{Name: "shopdb", Namespace: "default"},
		Spec: v1alpha1.PostgresSpec{
			Instances: 3, Synchronous: 1, Storage: v1alpha1.Storage{Size: "20Gi"}, Database: "shop",
		},
	}
	if err := env.Client.Create(ctx, pg); err != nil {
		t.Fatalf("create Postgres: %v", err)
	}
	if pg.Spec.Version != "16" || pg.Spec.DeletionPolicy != "Retain" || pg.Spec.FailoverDelay == nil {
		t.Errorf("Postgres defaults not applied: %+v", pg.Spec)
	}

	s := &v1alpha1.Sync{
		ObjectMeta: metav1.ObjectMeta{Name: "infra", Namespace: "default"},
		Spec:       v1alpha1.SyncSpec{URL: "file:///tmp/repo"},
	}
	if err := env.Client.Create(ctx, s); err != nil {
		t.Fatalf("create Sync: %v", err)
	}
	if s.Spec.Prune == nil || !*s.Spec.Prune || s.Spec.History != 20 || s.Spec.Path != "./" {
		t.Errorf("Sync defaults not applied: %+v", s.Spec)
	}
}

func TestCRDsRejectInvalidObjects(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		obj  client.Object
	}{
		{"app port out of range", &v1alpha1.App{
			ObjectMeta: metav1.ObjectMeta{Name: "bad-port", Namespace: "default"},
			Spec:       v1alpha1.AppSpec{Image: "nginx", Port: 70000},
		}},
		{"app negative replicas", &v1alpha1.App{
			ObjectMeta: metav1.ObjectMeta{Name: "bad-replicas", Namespace: "default"},
			Spec:       v1alpha1.AppSpec{Image: "nginx", Replicas: ptr.To[int32](-1)},
		}},
		{"app tls with both secret and issuer", &v1alpha1.App{
			ObjectMeta: metav1.ObjectMeta{Name: "bad-tls", Namespace: "default"},
			Spec:       v1alpha1.AppSpec{Image: "nginx", TLS: &v1alpha1.AppTLS{SecretName: "a", Issuer: "b"}},
		}},
		{"postgres zero instances", &v1alpha1.Postgres{
			ObjectMeta: metav1.ObjectMeta{Name: "bad-instances", Namespace: "default"},
			Spec:       v1alpha1.PostgresSpec{Instances: -1, Storage: v1alpha1.Storage{Size: "1Gi"}},
		}},
		{"postgres bad storage size", &v1alpha1.Postgres{
			ObjectMeta: metav1.ObjectMeta{Name: "bad-size", Namespace: "default"},
			Spec:       v1alpha1.PostgresSpec{Storage: v1alpha1.Storage{Size: "lots"}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := env.Client.Create(ctx, tc.obj); err == nil {
				t.Fatalf("%s: API server accepted an invalid object", tc.name)
			}
		})
	}
}
