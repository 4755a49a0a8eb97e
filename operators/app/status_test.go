package app

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// Against a real API server: an App turns Ready when its Deployment reports
// every replica available, and its URL is published in status.
func TestAppStatusFollowsItsDeployment(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Reconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()

	c := env.Client
	app := &v1alpha1.App{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "default"},
		Spec: v1alpha1.AppSpec{Image: "nginx:1.27", Domains: []string{"shop.example.com"}}}
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c, metav1.ConditionFalse, ReasonDeploymentMissing)

	labels := map[string]string{"app.kubernetes.io/name": "shop"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
			},
		},
	}
	if err := c.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c, metav1.ConditionFalse, ReasonRollingOut)

	// No kubelet or deployment controller runs here: report the rollout as
	// the deployment controller would.
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
	if err := c.Status().Update(ctx, dep); err != nil {
		t.Fatal(err)
	}
	got := waitReady(t, c, metav1.ConditionTrue, ReasonDeploymentReady)
	if got.Status.URL != "http://shop.example.com" || got.Status.ReadyReplicas != 2 {
		t.Errorf("status = %+v", got.Status)
	}
}

func waitReady(t *testing.T, c client.Client, status metav1.ConditionStatus, reason string) *v1alpha1.App {
	t.Helper()
	var app v1alpha1.App
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "shop"}, &app); err == nil {
			cond := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady)
			if cond != nil && cond.Status == status && cond.Reason == reason {
				return &app
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("App never reached Ready=%s (%s); status %+v", status, reason, app.Status)
	return nil
}
