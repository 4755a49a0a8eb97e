package deploy_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/deploy"
	"homeostat.dev/homeostat/internal/testenv"
	hsync "homeostat.dev/homeostat/sync"
)

var controllerKey = client.ObjectKey{Namespace: "homeostat-system", Name: "homeostat-controller"}

// install --dry-run writes nothing; install applies the base with the given
// image; uninstall removes the controller and its RBAC but keeps the CRDs
// and the namespace; and `kubectl apply -k deploy/`, the other install path
// the README gives, works on the same API server afterwards.
func TestInstallUninstallAndKubectlApply(t *testing.T) {
	ctx := context.Background()
	eng, err := hsync.New(env.Config, hsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := env.Client

	cs, err := deploy.Install(ctx, eng, "registry.example.com/homeostat:v1", true)
	if err != nil {
		t.Fatalf("install --dry-run: %v", err)
	}
	if cs.Count(hsync.Created) == 0 {
		t.Errorf("dry run planned no creations:\n%s", cs)
	}
	if err := c.Get(ctx, controllerKey, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry run wrote the Deployment (get: %v)", err)
	}

	if _, err := deploy.Install(ctx, eng, "registry.example.com/homeostat:v1", false); err != nil {
		t.Fatalf("install: %v", err)
	}
	var dep appsv1.Deployment
	if err := c.Get(ctx, controllerKey, &dep); err != nil {
		t.Fatalf("controller Deployment not installed: %v", err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/homeostat:v1" {
		t.Errorf("controller image = %s", img)
	}

	if _, err := deploy.Uninstall(ctx, eng, false); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "homeostat-controller"}, &rbacv1.ClusterRole{}); !apierrors.IsNotFound(err) {
		t.Errorf("uninstall left the ClusterRole (get: %v)", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "apps.homeostat.dev"}, &apiextensionsv1.CustomResourceDefinition{}); err != nil {
		t.Errorf("uninstall removed a CRD without --crds: %v", err)
	}
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: "homeostat-system"}, &ns); err != nil || !ns.DeletionTimestamp.IsZero() {
		t.Errorf("uninstall removed the namespace without --crds: %v", err)
	}

	kubectl, err := testenv.Binary("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "--kubeconfig", env.Kubeconfig, "apply", "-k", root+"/deploy").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply -k deploy/: %v\n%s", err, out)
	}
	for _, want := range []string{"serviceaccount/homeostat-controller", "deployment.apps/homeostat-controller", "clusterrole.rbac.authorization.k8s.io/homeostat-apply"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl output lacks %s:\n%s", want, out)
		}
	}
}
