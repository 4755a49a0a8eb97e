package controller

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// newKey makes an OpenPGP key pair, as `gpg --quick-gen-key` would.
func newKey(t *testing.T, name string) (*openpgp.Entity, string) {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", strings.ToLower(name)+"@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return e, b.String()
}

// signedCommit commits files, signed by key (unsigned when nil), and
// returns the commit hash.
func signedCommit(t *testing.T, r *gitRepo, files map[string]string, key *openpgp.Entity) string {
	t.Helper()
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(r.work, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(r.work, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wt, err := r.repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	r.tick++
	h, err := wt.Commit("change", &git.CommitOptions{SignKey: key,
		Author: &object.Signature{Name: "Ada", Email: "ada@example.com", When: time.Unix(1700000000+int64(r.tick), 0)}})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// A Sync with spec.verify applies only revisions signed by a trusted key:
// an unsigned commit, one signed by another key, a lightweight tag and an
// annotated tag signed by another key are each refused with
// VerificationFailed naming the commit or tag, and the last verified
// revision stays applied.
func TestVerifySignedRevisions(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "sync-verify")
	ada, adaPub := newKey(t, "Ada")
	mallory, _ := newKey(t, "Mallory")
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "trusted", Namespace: f.ns},
		Data: map[string][]byte{"ada.asc": []byte(adaPub)}}
	if err := env.Client.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	setVerify := func(mode string, ref *v1alpha1.GitRef) {
		t.Helper()
		if err := f.c.Get(ctx, client.ObjectKeyFromObject(f.sync), f.sync); err != nil {
			t.Fatal(err)
		}
		f.sync.Spec.Ref = ref
		f.sync.Spec.Verify = &v1alpha1.GitVerification{Mode: mode, SecretRef: v1alpha1.LocalObjectReference{Name: "trusted"}}
		if err := f.c.Update(ctx, f.sync); err != nil {
			t.Fatal(err)
		}
	}
	setVerify(v1alpha1.VerifyHEAD, nil)

	steps := []struct {
		name    string
		prepare func() string // commits; returns what the error must name
		value   string        // ConfigMap a after the sync
	}{
		{"signed by a trusted key", func() string {
			signedCommit(t, f.repo, map[string]string{"a.yaml": configMapYAML("a", "1")}, ada)
			return ""
		}, "1"},
		{"unsigned", func() string {
			h := signedCommit(t, f.repo, map[string]string{"a.yaml": configMapYAML("a", "2")}, nil)
			return "commit " + h[:12] + " is not signed"
		}, "1"},
		{"signed by another key", func() string {
			h := signedCommit(t, f.repo, map[string]string{"a.yaml": configMapYAML("a", "3")}, mallory)
			return "commit " + h[:12] + " is not signed by a trusted key"
		}, "1"},
		{"signed again", func() string {
			signedCommit(t, f.repo, map[string]string{"a.yaml": configMapYAML("a", "4")}, ada)
			return ""
		}, "4"},
		{"annotated tag signed by a trusted key", func() string {
			tag(t, f.repo, "v1", ada)
			setVerify(v1alpha1.VerifyTagAndHEAD, &v1alpha1.GitRef{Tag: "v1"})
			return ""
		}, "4"},
		{"lightweight tag", func() string {
			h := signedCommit(t, f.repo, map[string]string{"a.yaml": configMapYAML("a", "5")}, ada)
			if err := f.repo.repo.Storer.SetReference(plumbing.NewHashReference("refs/tags/v2", plumbing.NewHash(h))); err != nil {
				t.Fatal(err)
			}
			setVerify(v1alpha1.VerifyTag, &v1alpha1.GitRef{Tag: "v2"})
			return "tag v2 is a lightweight tag"
		}, "4"},
		{"tag signed by another key", func() string {
			tag(t, f.repo, "v3", mallory)
			setVerify(v1alpha1.VerifyTag, &v1alpha1.GitRef{Tag: "v3"})
			return "tag v3 is not signed by a trusted key"
		}, "4"},
	}
	lastGood := ""
	for _, st := range steps {
		want := st.prepare()
		o := f.run(TriggerManual)
		if want == "" {
			mustSucceed(t, o)
			lastGood = f.sync.Status.LastAppliedRevision
		} else {
			ready := apimeta.FindStatusCondition(f.sync.Status.Conditions, v1alpha1.ConditionReady)
			if o.Err == nil || o.Reason != ReasonVerificationFailed || ready == nil || ready.Status != metav1.ConditionFalse ||
				ready.Reason != ReasonVerificationFailed || !strings.Contains(ready.Message, want) {
				t.Fatalf("%s: outcome %s %v, Ready %+v; want VerificationFailed naming %q", st.name, o.Reason, o.Err, ready, want)
			}
			if f.sync.Status.LastAppliedRevision != lastGood {
				t.Fatalf("%s: last applied revision moved from %s to %s", st.name, lastGood, f.sync.Status.LastAppliedRevision)
			}
		}
		if v, _ := configMapValue(t, f.ns, "a"); v != st.value {
			t.Fatalf("%s: ConfigMap a = %q, want %q", st.name, v, st.value)
		}
	}
}

// tag makes an annotated tag of HEAD signed by key.
func tag(t *testing.T, r *gitRepo, name string, key *openpgp.Entity) {
	t.Helper()
	head, err := r.repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.repo.CreateTag(name, head.Hash(), &git.CreateTagOptions{Message: name, SignKey: key,
		Tagger: &object.Signature{Name: "Ada", Email: "ada@example.com", When: time.Unix(1700000000, 0)}})
	if err != nil {
		t.Fatal(err)
	}
}
