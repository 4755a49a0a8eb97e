package main

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// A CLI sync of an existing Sync changes --repo and the flags given, and
// nothing else: verification, the impersonated ServiceAccount, the prune
// limit and the rest survive it.
func TestOverlaySpecChangesOnlyWhatWasAsked(t *testing.T) {
	yes, no := true, false
	limit := int32(7)
	have := v1alpha1.SyncSpec{
		URL: "https://git.example.com/old.git", Path: "./clusters/prod", Ref: &v1alpha1.GitRef{Branch: "release"},
		SecretRef: &v1alpha1.LocalObjectReference{Name: "git"}, Interval: &metav1.Duration{Duration: 5 * time.Minute},
		Prune: &yes, Wait: &yes, TargetNamespace: "prod", ServiceAccountName: "deployer", PruneLimit: &limit,
		Force: true, History: 9, Verify: &v1alpha1.GitVerification{SecretRef: v1alpha1.LocalObjectReference{Name: "keys"}},
		DependsOn: []v1alpha1.SyncReference{{Name: "infra"}},
	}
	flags := v1alpha1.SyncSpec{
		URL: "https://git.example.com/new.git", Path: "./", Ref: &v1alpha1.GitRef{Branch: "main"},
		Interval: &metav1.Duration{Duration: time.Minute}, Prune: &no, Wait: &no,
	}
	cases := []struct {
		name string
		set  []string
		want func(*v1alpha1.SyncSpec)
	}{
		{"no flags: only the URL", nil, func(s *v1alpha1.SyncSpec) {}},
		{"--path and --prune=false", []string{"path", "prune"}, func(s *v1alpha1.SyncSpec) { s.Path, s.Prune = "./", &no }},
		{"--ref, --interval, --wait", []string{"ref", "interval", "wait"}, func(s *v1alpha1.SyncSpec) {
			s.Ref, s.Interval, s.Wait = &v1alpha1.GitRef{Branch: "main"}, &metav1.Duration{Duration: time.Minute}, &no
		}},
		{"--secret '' clears it", []string{"secret"}, func(s *v1alpha1.SyncSpec) { s.SecretRef = nil }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set := map[string]bool{}
			for _, f := range c.set {
				set[f] = true
			}
			want := *have.DeepCopy()
			want.URL = flags.URL
			c.want(&want)
			got := overlaySpec(have, flags, func(f string) bool { return set[f] })
			if !reflect.DeepEqual(want, got) {
				w, _ := json.Marshal(want)
				g, _ := json.Marshal(got)
				t.Errorf("spec\n got %s\nwant %s", g, w)
			}
		})
	}
	if have.URL != "https://git.example.com/old.git" || have.Verify == nil {
		t.Error("overlaySpec changed the Sync it was given")
	}
}
