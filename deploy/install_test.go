package deploy_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/internal/testenv"
)

// `kubectl apply -k deploy/` — the install path the README gives — works
// against a real API server.
func TestKubectlApplyKustomizeBase(t *testing.T) {
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
	for _, want := range []string{"namespace/homeostat-system", "serviceaccount/homeostat-controller", "deployment.apps/homeostat-controller", "clusterrole.rbac.authorization.k8s.io/homeostat-apply"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl output lacks %s:\n%s", want, out)
		}
	}
	var role rbacv1.ClusterRole
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "homeostat-controller"}, &role); err != nil {
		t.Fatalf("controller ClusterRole not installed: %v", err)
	}
}
