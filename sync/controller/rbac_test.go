package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
)

// shippedClusterRoles reads the ClusterRoles of deploy/rbac.yaml.
func shippedClusterRoles(t *testing.T) []rbacv1.ClusterRole {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "deploy", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var roles []rbacv1.ClusterRole
	for doc := range strings.SplitSeq(string(data), "\n---\n") {
		var r rbacv1.ClusterRole
		if err := yaml.Unmarshal([]byte(doc), &r); err != nil {
			t.Fatalf("deploy/rbac.yaml: %v", err)
		}
		if r.Kind == "ClusterRole" {
			roles = append(roles, r)
		}
	}
	if len(roles) != 2 {
		t.Fatalf("deploy/rbac.yaml: %d ClusterRoles, want homeostat-controller and homeostat-apply", len(roles))
	}
	return roles
}

// listsEveryKind is the rule that lets the controller look into a
// Namespace before pruning it.
func listsEveryKind(r rbacv1.PolicyRule) bool {
	return len(r.Resources) == 1 && r.Resources[0] == "*" && len(r.Verbs) == 1 && r.Verbs[0] == "list"
}

// grant binds copies of roles to user, and waits until the API server
// authorizes by them.
func grant(t *testing.T, user string, roles []rbacv1.ClusterRole) {
	t.Helper()
	ctx := context.Background()
	for _, r := range roles {
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: r.Name + "-" + user}, Rules: r.Rules}
		binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
			Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}}
		for _, o := range []client.Object{role, binding} {
			if err := env.Client.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
		}
	}
}

// runAs makes the fixture's Runner read, write and apply as user, as the
// controller does with its ServiceAccount.
func (f *fixture) runAs(user string) {
	f.t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		f.t.Fatal(err)
	}
	// RBAC changes reach the authorizer through a watch: wait for them.
	err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		return c.Get(ctx, client.ObjectKeyFromObject(f.sync), &v1alpha1.Sync{}) == nil, nil
	})
	if err != nil {
		f.t.Fatalf("%s never got the rights it was granted: %v", user, err)
	}
	eng, err := hsync.New(cfg, hsync.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	f.c, f.runner.Client, f.runner.Engine = c, c, eng
	f.runner.Source = GitSource{Fetcher: f.runner.Source.(GitSource).Fetcher, Client: c}
}

// With deploy/rbac.yaml as shipped, the controller prunes a Namespace it
// emptied: it may list every kind (metadata only) to see that nothing else
// lives there. Without that rule it cannot tell, so it keeps the Namespace
// and the Sync's Ready condition says which kinds it could not check.
func TestNamespacePruneFailsSafeWithoutListRights(t *testing.T) {
	shipped := shippedClusterRoles(t)
	narrower := make([]rbacv1.ClusterRole, len(shipped))
	for i, r := range shipped {
		narrower[i] = *r.DeepCopy()
		narrower[i].Rules = nil
		for _, rule := range r.Rules {
			if !listsEveryKind(rule) {
				narrower[i].Rules = append(narrower[i].Rules, rule)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		roles []rbacv1.ClusterRole
		kept  bool
	}{
		{"rbac-shipped", shipped, false},
		{"rbac-narrower", narrower, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.name)
			user := "homeostat-" + tc.name
			grant(t, user, tc.roles)
			f.runAs(user)
			gone := f.ns + "-gone"
			cm := strings.Replace(configMapYAML("settings", "1"), "metadata:\n", "metadata:\n  namespace: "+gone+"\n", 1)
			files := map[string]string{"ns.yaml": namespaceYAML(gone), "cm.yaml": cm}
			for i := range 3 { // so the prune stays under the mass-prune guard
				files[fmt.Sprintf("keep%d.yaml", i)] = configMapYAML(fmt.Sprintf("keep%d", i), "1")
			}
			f.repo.commit("a namespace", files)
			mustSucceed(t, f.run(TriggerManual))

			f.repo.commit("drop it", map[string]string{"ns.yaml": "", "cm.yaml": ""})
			o := f.run(TriggerManual)
			mustSucceed(t, o)
			if _, ok := configMapValue(t, gone, "settings"); ok {
				t.Fatal("the Sync's own ConfigMap in the Namespace was not pruned")
			}
			ready := apimeta.FindStatusCondition(f.sync.Status.Conditions, v1alpha1.ConditionReady)
			if !tc.kept {
				if namespaceLive(t, gone) || o.Changes.Count(hsync.Kept) != 0 {
					t.Fatalf("with the shipped RBAC the emptied Namespace must be pruned; Ready: %q\n%s", ready.Message, o.Changes)
				}
				return
			}
			if !namespaceLive(t, gone) {
				t.Fatal("a Namespace whose kinds the controller may not all list was deleted")
			}
			if o.Changes.Count(hsync.Kept) != 1 || !strings.Contains(ready.Message, "kept Namespace/"+gone) || !strings.Contains(ready.Message, "cannot list") {
				t.Fatalf("the Sync must say it kept the Namespace and why; Ready: %q\n%s", ready.Message, o.Changes)
			}
		})
	}
}
