package deploy_test

import (
	"context"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The homeostat-controller ClusterRole alone covers every request the
// operators make, including those a full sync of examples/ never reaches
// (failover, scale-down, deletionPolicy: Delete). Without this, the
// homeostat-apply role bound to the same ServiceAccount would hide a gap
// that shows up only for users who narrow or drop homeostat-apply.
func TestControllerRoleCoversWhatTheOperatorsDo(t *testing.T) {
	ctx := context.Background()
	install(t)
	const user = "rbac-probe"
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "homeostat-controller-probe"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "homeostat-controller"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}
	if err := env.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), binding) })

	tests := []struct {
		why                   string
		verb, group, resource string
		subresource           string
	}{
		{"Sync finalizer and inventory", "update", "homeostat.dev", "syncs", ""},
		{"Sync status", "patch", "homeostat.dev", "syncs", "status"},
		{"snapshots are written and trimmed", "delete", "homeostat.dev", "snapshots", ""},
		{"scheduled backups", "create", "homeostat.dev", "backups", ""},
		{"builds for new commits", "create", "homeostat.dev", "builds", ""},
		{"generated Postgres credentials", "create", "", "secrets", ""},
		{"credentials removed with deletionPolicy: Delete", "delete", "", "secrets", ""},
		{"server certificate renewed, ca.crt in the credentials", "update", "", "secrets", ""},
		{"spec.tls.issuer: a cert-manager Certificate", "create", "cert-manager.io", "certificates", ""},
		{"spec.tls.issuer: the Certificate follows the instances", "update", "cert-manager.io", "certificates", ""},
		{"spec.tls.issuer removed: the operator's own CA again", "delete", "cert-manager.io", "certificates", ""},
		{"volume marked ready after initdb/join", "patch", "", "persistentvolumeclaims", ""},
		{"volume of a failed join or a removed replica", "delete", "", "persistentvolumeclaims", ""},
		{"role labels on instance pods", "patch", "", "pods", ""},
		{"fencing an old primary", "delete", "", "pods", ""},
		{"homeostat ci logs", "get", "", "pods", "log"},
		{"services follow the primary", "patch", "", "services", ""},
		{"initdb, join, restore jobs", "create", "batch", "jobs", ""},
		{"instance pods' ServiceAccount", "create", "", "serviceaccounts", ""},
		{"instance Role kept as built", "update", "rbac.authorization.k8s.io", "roles", ""},
		{"instance RoleBinding with a changed roleRef replaced", "delete", "rbac.authorization.k8s.io", "rolebindings", ""},
		{"events", "create", "events.k8s.io", "events", ""},
		{"leader election", "update", "coordination.k8s.io", "leases", ""},
		{"Sync.spec.serviceAccountName", "impersonate", "", "serviceaccounts", ""},
	}
	// The authorizer sees the new binding through its informers.
	waitAllowed(t, user, "get", "homeostat.dev", "syncs")
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			if ok, reason := allowed(t, user, tt.verb, tt.group, tt.resource, tt.subresource); !ok {
				t.Errorf("homeostat-controller lacks %s %s/%s (%s): %s",
					tt.verb, tt.resource, tt.subresource, tt.why, reason)
			}
		})
	}
}
