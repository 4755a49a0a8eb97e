package controller

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	"homeostat.dev/homeostat/sync/snapshot"
	"homeostat.dev/homeostat/sync/webhook"
)

func sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func TestWebhookPushTriggersMatchingSync(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "sync-webhook")
	f.repo.commit("v1", map[string]string{"a.yaml": configMapYAML("a", "1")})
	mustSucceed(t, f.run(TriggerManual))
	f.repo.commit("v2", map[string]string{"a.yaml": configMapYAML("a", "2")})

	secret := []byte("s3cret")
	srv := httptest.NewServer(&webhook.Receiver{Secret: secret, Handlers: []webhook.Handler{PushTrigger{Client: f.c}}})
	defer srv.Close()
	body := fmt.Appendf(nil, `{"ref":"refs/heads/main","after":"abc","repository":{"clone_url":%q}}`, f.repo.url())
	post := func(sig string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	syncAt := func() string {
		var s v1alpha1.Sync
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(f.sync), &s); err != nil {
			t.Fatal(err)
		}
		return s.Annotations[AnnotationSyncAt]
	}

	if code := post(sign([]byte("wrong"), body)); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: got %d, want 401", code)
	}
	if syncAt() != "" {
		t.Fatal("a push with a bad signature triggered a sync")
	}
	if code := post(sign(secret, body)); code != http.StatusAccepted {
		t.Fatalf("good signature: got %d, want 202", code)
	}
	at := syncAt()
	if at == "" {
		t.Fatal("a verified push did not trigger the Sync")
	}

	r := &Reconciler{Client: f.c, Runner: f.runner}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(f.sync)}); err != nil {
		t.Fatal(err)
	}
	if v, _ := configMapValue(t, f.ns, "a"); v != "2" {
		t.Fatalf("the triggered sync did not apply v2: a=%q", v)
	}
	var s v1alpha1.Sync
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(f.sync), &s); err != nil {
		t.Fatal(err)
	}
	if s.Status.LastHandledSyncAt != at {
		t.Fatalf("lastHandledSyncAt %q, want %q", s.Status.LastHandledSyncAt, at)
	}
	snaps, err := snapshot.List(ctx, env.Client, f.ns, "apps")
	if err != nil {
		t.Fatal(err)
	}
	if snaps[0].Spec.Trigger != TriggerWebhook {
		t.Fatalf("newest snapshot trigger %q, want webhook", snaps[0].Spec.Trigger)
	}
}
