package controller

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestServiceAccountLimitsWhatASyncMayChange(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "sync-impersonate")
	f.runner.Impersonate = NewImpersonator(env.Config)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: f.ns}}
	if err := env.Client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	f.sync.Spec.ServiceAccountName = "deployer"
	if err := env.Client.Update(ctx, f.sync); err != nil {
		t.Fatal(err)
	}
	f.repo.commit("config", map[string]string{"a.yaml": configMapYAML("a", "1")})

	// Without any role the account may change nothing.
	o := f.run(TriggerManual)
	if o.Reason != ReasonApplyFailed || !strings.Contains(o.Err.Error(), "forbidden") {
		t.Fatalf("want a forbidden apply, got %q: %v", o.Reason, o.Err)
	}
	if _, ok := configMapValue(t, f.ns, "a"); ok {
		t.Fatal("an account without rights created a ConfigMap")
	}

	// Allowed ConfigMaps in its namespace, it syncs.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "configmaps", Namespace: f.ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "patch", "update", "delete"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: f.ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "configmaps"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: f.ns}}}
	if err := env.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	o = f.run(TriggerManual)
	mustSucceed(t, o)
	if v, _ := configMapValue(t, f.ns, "a"); v != "1" {
		t.Fatalf("a=%q", v)
	}
}
