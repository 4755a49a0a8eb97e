package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/internal/testenv"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// freePort returns a loopback address nobody listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// eventually polls cond until it holds or 60 seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestControllerSyncsOnCreateAndOnWebhook runs `homeostat controller` as a
// real process: it syncs a new Sync, syncs again at once on a verified push
// webhook, and serves probes and metrics.
func TestControllerSyncsOnCreateAndOnWebhook(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()
	repo := newCLIRepo(t)
	repo.write(map[string]string{"a.yaml": cm("a", "1")})
	repo.commit("v1")

	secretFile := t.TempDir() + "/secret"
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	metrics, health, hook := freePort(t), freePort(t), freePort(t)
	_, out := startHomeostat(t, "controller", "--kubeconfig", env.Kubeconfig, "--metrics-addr", metrics,
		"--health-addr", health, "--webhook-addr", hook, "--webhook-secret-file", secretFile, "--cache-dir", t.TempDir())

	s := &v1alpha1.Sync{ObjectMeta: metav1.ObjectMeta{Name: "apps", Namespace: "default"},
		Spec: v1alpha1.SyncSpec{URL: "file://" + repo.dir, Wait: new(false), Interval: &metav1.Duration{Duration: time.Hour}}}
	if err := env.Client.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	get := func() *v1alpha1.Sync {
		var got v1alpha1.Sync
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(s), &got); err != nil {
			t.Fatal(err)
		}
		return &got
	}
	eventually(t, "the first sync to be Ready\n"+out.String(), func() bool {
		return apimeta.IsStatusConditionTrue(get().Status.Conditions, v1alpha1.ConditionReady)
	})
	first := get().Status.LastAppliedRevision

	// A push: with the interval at one hour, only the webhook can sync v2.
	repo.write(map[string]string{"a.yaml": cm("a", "2")})
	repo.commit("v2")
	body := fmt.Appendf(nil, `{"ref":"refs/heads/main","after":"x","repository":{"clone_url":"file://%s"}}`, repo.dir)
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write(body)
	sig := hex.EncodeToString(mac.Sum(nil))
	var resp *http.Response
	eventually(t, "the webhook receiver to answer", func() bool {
		req, _ := http.NewRequest(http.MethodPost, "http://"+hook+"/hook", bytes.NewReader(body))
		req.Header.Set("X-Gitea-Event", "push")
		req.Header.Set("X-Gitea-Signature", sig)
		resp, err = http.DefaultClient.Do(req)
		return err == nil
	})
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}
	eventually(t, "the webhook to sync v2\n"+out.String(), func() bool {
		r := get().Status.LastAppliedRevision
		return r != "" && r != first
	})

	for _, probe := range []string{"http://" + health + "/healthz", "http://" + health + "/readyz"} {
		r, err := http.Get(probe)
		if err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v %v", probe, err, r)
		}
		r.Body.Close()
	}
	r, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, want := range []string{"homeostat_sync_duration_seconds_bucket", `homeostat_sync_objects_total{action="created",name="apps",namespace="default"} 1`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
