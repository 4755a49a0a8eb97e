package deploy_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/deploy"
	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
)

const controllerSA = "system:serviceaccount:homeostat-system:homeostat-controller"

// The RBAC of deploy/ is sufficient: the real controller binary, run with
// exactly the homeostat-controller ServiceAccount's permissions (the
// kubeconfig impersonates it), syncs the examples repository to Ready, and
// neither it nor its operators are refused anything along the way.
func TestControllerRBACSufficesForAFullSync(t *testing.T) {
	ctx := context.Background()
	install(t)
	dir := t.TempDir()
	kubeconfig := impersonatingKubeconfig(t, dir, controllerSA)
	repo := examplesRepo(t, dir)
	bin := buildHomeostat(t, dir)

	var logs bytes.Buffer
	cmd := exec.Command(bin, "controller", "--kubeconfig", kubeconfig, "--metrics-addr", "0",
		"--health-addr", "127.0.0.1:0", "--webhook-addr", "", "--cache-dir", filepath.Join(dir, "cache"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	s := &v1alpha1.Sync{
		ObjectMeta: metav1.ObjectMeta{Name: "examples", Namespace: "homeostat-system"},
		Spec: v1alpha1.SyncSpec{URL: "file://" + repo, Wait: ptr.To(false),
			Interval: &metav1.Duration{Duration: time.Hour}},
	}
	if err := env.Client.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
			t.Fatal(err)
		}
		ready := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady)
		if ready != nil && ready.Status == metav1.ConditionTrue && s.Status.LastSnapshot != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sync never became Ready as %s: %+v\ncontroller log:\n%s", controllerSA, ready, logs.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The shop's Postgres waits for its S3 credentials (created out of
	// band); given them, it gives its instances their ServiceAccount, Role
	// and RoleBinding, which the controller may create only if it holds
	// every permission the Role grants (no bind or escalate).
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "minio-credentials", Namespace: "shop"},
		StringData: map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret-key"}}
	if err := env.Client.Create(ctx, creds); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(250 * time.Millisecond) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "shopdb"}, &rbacv1.RoleBinding{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no RoleBinding shop/shopdb for the instances a minute after the sync (%v)\ncontroller log:\n%s", err, logs.String())
		}
	}
	// Let the operators act on what was applied (secrets, volumes, jobs,
	// services of the Postgres; the App status) before reading the log.
	time.Sleep(5 * time.Second)
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "forbidden") {
			t.Errorf("the controller was refused something with its ServiceAccount's RBAC:\n%s", line)
		}
	}
	var apps v1alpha1.AppList
	if err := env.Client.List(ctx, &apps); err != nil || len(apps.Items) == 0 {
		t.Fatalf("no Apps applied (err %v)", err)
	}
}

// impersonatingKubeconfig writes the admin kubeconfig with `as:` set, so
// every request of the process that uses it carries only user's permissions.
func impersonatingKubeconfig(t *testing.T, dir, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range cfg.AuthInfos {
		auth.Impersonate = user
	}
	p := filepath.Join(dir, "kubeconfig-controller")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// examplesRepo commits examples/ to a new git repository.
func examplesRepo(t *testing.T, dir string) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "repo")
	if err := os.CopyFS(repo, os.DirFS(filepath.Join(root, "examples"))); err != nil {
		t.Fatal(err)
	}
	tests, _ := filepath.Glob(filepath.Join(repo, "*.go")) // examples/' own tests are no manifests
	for _, f := range tests {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "examples"}} {
		git := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		if out, err := git.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return repo
}

func buildHomeostat(t *testing.T, dir string) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "homeostat")
	build := exec.Command("go", "build", "-o", bin, "./cmd/homeostat")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// install applies deploy/ (the embedded manifests) to the test API server
// and waits until the authorizer has seen the controller's bindings: an
// earlier test's uninstall deleted them, and a controller started before
// the authorizer's informers catch up would be refused, wrongly.
func install(t *testing.T) {
	t.Helper()
	eng, err := hsync.New(env.Config, hsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deploy.Install(context.Background(), eng, "", false); err != nil {
		t.Fatalf("install: %v", err)
	}
	waitAllowed(t, controllerSA, "get", "homeostat.dev", "syncs")
	waitAllowed(t, controllerSA, "get", "apps", "deployments")
}

// waitAllowed waits until user may verb group/resource in namespace web.
func waitAllowed(t *testing.T, user, verb, group, resource string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if ok, _ := allowed(t, user, verb, group, resource, ""); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not allowed to %s %s.%s 30 s after install", user, verb, resource, group)
		}
	}
}

// allowed asks the API server whether user may verb group/resource[/sub]
// in namespace web, and why not.
func allowed(t *testing.T, user, verb, group, resource, subresource string) (bool, string) {
	t.Helper()
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: user,
		ResourceAttributes: &authzv1.ResourceAttributes{Namespace: "web", Verb: verb,
			Group: group, Resource: resource, Subresource: subresource},
	}}
	if err := env.Client.Create(context.Background(), sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed, sar.Status.Reason
}
