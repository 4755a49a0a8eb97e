package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/operators/instance"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// asServiceAccount is a client that acts as ns's ServiceAccount sa, as a pod
// that runs as it does (its token's permissions, no more).
func asServiceAccount(t *testing.T, ns, sa string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + sa}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// calls is what the instance manager of pod asks the API server, as the
// cluster's ServiceAccount, and how each call ended.
func calls(ctx context.Context, c client.Client, ns, cluster, pod string) (primary string, errPrimary, errHeartbeat error) {
	a := NewAuthority(c, ns, cluster, pod)
	primary, errPrimary = a.Primary(ctx)
	return primary, errPrimary, a.Heartbeat(ctx)
}

// forbidden: the API server answered with a refusal for lack of RBAC.
func forbidden(err error) bool {
	return errors.Is(err, instance.ErrRefused) && apierrors.IsForbidden(err)
}

// waitCalls waits (the authorizer sees RBAC changes through informers)
// until the instance manager's two calls end as wanted.
func waitCalls(t *testing.T, c client.Client, ns, pod string, primaryOK, heartbeatOK bool) {
	t.Helper()
	ctx := context.Background()
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, ep, eh := calls(ctx, c, ns, "db", pod)
		last = fmt.Sprintf("primary: %v; heartbeat: %v", ep, eh)
		if endedAs(ep, primaryOK) && endedAs(eh, heartbeatOK) {
			return
		}
	}
	t.Fatalf("want primary allowed=%v, heartbeat allowed=%v; last: %s", primaryOK, heartbeatOK, last)
}

// The operator gives each cluster a ServiceAccount, a Role and a
// RoleBinding, owned by the Postgres and labelled for the controller's
// cache; instance pods run as that ServiceAccount, the Jobs too (with no
// token: they call nothing). The Role is exactly what `instance run` needs:
// with it, both its calls succeed as the ServiceAccount; without either
// rule, that call is refused; other clusters' objects and everything else
// are refused. A hand edit of any of the three is put back by the next
// reconcile.
func TestInstancesGetExactlyTheAccessInstanceRunNeeds(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	pg := createPostgres(t, ns, nil)
	r := newReconciler()
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	// Before any volume, the Role names no pod (a rule without
	// resourceNames would cover them all)...
	if role := get(t, &rbacv1.Role{}, ns, "db"); len(role.Rules) != 1 || role.Rules[0].Resources[0] != "postgres" {
		t.Fatalf("role of a cluster with no volume yet: %+v", role.Rules)
	}
	job := get(t, &batchv1.Job{}, ns, "db-1-init")
	if sp := job.Spec.Template.Spec; sp.ServiceAccountName != "db" || sp.AutomountServiceAccountToken == nil || *sp.AutomountServiceAccountToken {
		t.Errorf("init job runs as %q with automountServiceAccountToken %v, want db without a token", sp.ServiceAccountName, sp.AutomountServiceAccountToken)
	}
	completeJob(t, ns, "db-1-init", true)
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	if pod := get(t, &corev1.Pod{}, ns, "db-1"); pod.Spec.ServiceAccountName != "db" {
		t.Errorf("instance pod runs as %q, want db", pod.Spec.ServiceAccountName)
	}
	pg = get(t, &v1alpha1.Postgres{}, ns, "db")
	for _, obj := range []client.Object{&corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}} {
		got := get(t, obj, ns, "db")
		if !metav1.IsControlledBy(got, pg) || got.GetLabels()[v1alpha1.LabelManagedBy] != v1alpha1.ManagedByValue {
			t.Errorf("%T db: owners %v, labels %v; want controlled by the Postgres and managed-by homeostat", obj, got.GetOwnerReferences(), got.GetLabels())
		}
	}
	// Another cluster's pod, for the refusals below.
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other-1", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
	if err := env.Client.Create(ctx, other); err != nil {
		t.Fatal(err)
	}

	sa := asServiceAccount(t, ns, "db")
	waitCalls(t, sa, ns, "db-1", true, true)
	if p, _, _ := calls(ctx, sa, ns, "db", "db-1"); p != "db-1" {
		t.Errorf("primary read as the ServiceAccount = %q, want db-1", p)
	}
	if got := get(t, &corev1.Pod{}, ns, "db-1").Annotations[AnnotationHeartbeat]; got == "" {
		t.Error("no heartbeat on db-1 after an allowed heartbeat")
	}
	refusals := map[string]error{
		"another cluster's postgres": NewAuthority(sa, ns, "other", "db-1").heartbeatOrPrimary(ctx, false),
		"another cluster's pod":      NewAuthority(sa, ns, "db", "other-1").heartbeatOrPrimary(ctx, true),
		"secrets":                    sa.Get(ctx, client.ObjectKey{Namespace: ns, Name: SecretName("db", SecretSuperuser)}, &corev1.Secret{}),
		"listing pods":               sa.List(ctx, &corev1.PodList{}, client.InNamespace(ns)),
		"updating the postgres":      sa.Update(ctx, pg),
	}
	for what, err := range refusals {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: err %v, want forbidden", what, err)
		}
	}

	edits := []struct {
		name                   string
		edit                   func(t *testing.T)
		primaryOK, heartbeatOK bool
	}{
		{"role without get on the postgres", func(t *testing.T) { dropRule(t, ns, "postgres") }, false, true},
		{"role without patch on pods", func(t *testing.T) { dropRule(t, ns, "pods") }, true, false},
		{"binding deleted", func(t *testing.T) {
			if err := env.Client.Delete(ctx, get(t, &rbacv1.RoleBinding{}, ns, "db")); err != nil {
				t.Fatal(err)
			}
		}, false, false},
		{"binding to another role", func(t *testing.T) {
			if err := env.Client.Delete(ctx, get(t, &rbacv1.RoleBinding{}, ns, "db")); err != nil {
				t.Fatal(err)
			}
			empty := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "nothing", Namespace: ns}}
			if err := env.Client.Create(ctx, empty); client.IgnoreAlreadyExists(err) != nil {
				t.Fatal(err)
			}
			rb := InstanceRoleBinding(pg)
			rb.RoleRef.Name = "nothing"
			if err := env.Client.Create(ctx, rb); err != nil {
				t.Fatal(err)
			}
		}, false, false},
	}
	// A deleted ServiceAccount would invalidate the pods' tokens; it is
	// created again.
	if err := env.Client.Delete(ctx, get(t, &corev1.ServiceAccount{}, ns, "db")); err != nil {
		t.Fatal(err)
	}
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	if got := get(t, &corev1.ServiceAccount{}, ns, "db"); !metav1.IsControlledBy(got, pg) {
		t.Errorf("service account db not put back as the Postgres': owners %v", got.OwnerReferences)
	}
	for _, tt := range edits {
		t.Run(tt.name, func(t *testing.T) {
			tt.edit(t)
			waitCalls(t, sa, ns, "db-1", tt.primaryOK, tt.heartbeatOK)
			if _, err := reconcileOnce(t, r, pg); err != nil {
				t.Fatal(err)
			}
			waitCalls(t, sa, ns, "db-1", true, true)
		})
	}
}

// endedAs: a call that should be allowed succeeded, one that should not
// was refused for lack of RBAC (not for any other reason).
func endedAs(err error, allowed bool) bool {
	if allowed {
		return err == nil
	}
	return forbidden(err)
}

// heartbeatOrPrimary is one of the Authority's calls, for the refusals.
func (a Authority) heartbeatOrPrimary(ctx context.Context, heartbeat bool) error {
	if heartbeat {
		return a.Heartbeat(ctx)
	}
	_, err := a.Primary(ctx)
	return err
}

// dropRule removes the Role's rule on resource, as a careless hand edit.
func dropRule(t *testing.T, ns, resource string) {
	t.Helper()
	role := get(t, &rbacv1.Role{}, ns, "db")
	var kept []rbacv1.PolicyRule
	for _, rule := range role.Rules {
		if rule.Resources[0] != resource {
			kept = append(kept, rule)
		}
	}
	if len(kept) == len(role.Rules) {
		t.Fatalf("role db has no rule on %s: %+v", resource, role.Rules)
	}
	role.Rules = kept
	if err := env.Client.Update(context.Background(), role); err != nil {
		t.Fatal(err)
	}
}
