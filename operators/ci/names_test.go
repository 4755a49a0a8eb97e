package ci

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

const sha = "0123456789abcdef0123456789abcdef01234567"

func TestBuildName(t *testing.T) {
	long := strings.Repeat("feature-", 10)
	cases := []struct{ pipeline, branch, want string }{
		{"shop", "main", "shop-main-0123456"},
		{"shop", "release/1.2", "shop-release-1-2-0123456"},
		{"shop", "Feature/UPPER_case", "shop-feature-upper-case-0123456"},
		{"shop", "///", "shop-" + hash6("shop", "///") + "-0123456"},
		{"shop", long + "a", "shop-feature-feature-feature-feature-feature-fea-" + hash6("shop", long+"a") + "-0123456"},
		{"shop", long + "b", "shop-feature-feature-feature-feature-feature-fea-" + hash6("shop", long+"b") + "-0123456"},
	}
	for _, c := range cases {
		got := BuildName(c.pipeline, c.branch, sha)
		if got != c.want || len(got) > 63 {
			t.Errorf("BuildName(%q, %q) = %q (%d), want %q", c.pipeline, c.branch, got, len(got), c.want)
		}
	}
	if BuildName("shop", long+"a", sha) == BuildName("shop", long+"b", sha) {
		t.Errorf("two long branches sharing a prefix got one name")
	}
}

// hash6 is the disambiguating hash BuildName adds to shortened names.
func hash6(pipeline, branch string) string {
	sum := sha256.Sum256([]byte(pipeline + "\x00" + branch))
	return hex.EncodeToString(sum[:])[:6]
}

func TestMatchBranch(t *testing.T) {
	cases := []struct {
		patterns []string
		branch   string
		want     bool
	}{
		{nil, "main", true},
		{nil, "master", false},
		{[]string{"main", "release/*"}, "release/1.2", true},
		{[]string{"release/*"}, "release/1.2/hotfix", false},
		{[]string{"release/*"}, "releases", false},
		{[]string{"*"}, "dev", true},
		{[]string{"feature-[ab]"}, "feature-b", true},
		{[]string{"[broken"}, "[broken", true}, // a bad glob still matches itself
	}
	for _, c := range cases {
		if got := MatchBranch(c.patterns, c.branch); got != c.want {
			t.Errorf("MatchBranch(%q, %q) = %v", c.patterns, c.branch, got)
		}
	}
}

// TestNormalizeRepo: every URL a push webhook gives for a repository
// matches the Pipeline's URL of it, whatever the scheme.
func TestNormalizeRepo(t *testing.T) {
	same := []string{
		"https://github.com/acme/shop.git",
		"https://github.com/acme/shop",
		"https://GitHub.com/acme/shop/",
		"https://token@github.com:443/acme/shop.git",
		"ssh://git@github.com/acme/shop.git",
		"ssh://git@github.com:22/acme/shop.git",
		"git@github.com:acme/shop.git",
		"http://github.com/acme/shop",
	}
	for _, u := range same {
		if got := NormalizeRepo(u); got != "github.com/acme/shop" {
			t.Errorf("NormalizeRepo(%q) = %q", u, got)
		}
	}
	for _, u := range []string{"https://github.com/acme/shop2", "https://gitlab.com/acme/shop", "https://github.com/acme/shop:8443"} {
		if NormalizeRepo(u) == "github.com/acme/shop" {
			t.Errorf("%q matched github.com/acme/shop", u)
		}
	}
}

func TestLabelValue(t *testing.T) {
	if LabelValue("shop") != "shop" {
		t.Fatal("a short value changed")
	}
	a, b := LabelValue(strings.Repeat("a", 70)), LabelValue(strings.Repeat("a", 71))
	if len(a) > 63 || len(b) > 63 || a == b {
		t.Fatalf("%q %q", a, b)
	}
}

func TestRerunOf(t *testing.T) {
	p := &v1alpha1.Pipeline{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "ci", UID: "p-uid"}, Spec: v1alpha1.PipelineSpec{Repo: "https://x/a/b"}}
	b := NewBuild(p, "main", sha)
	b.Spec.Resume = true
	r := RerunOf(b)
	if r.Name != "" || r.GenerateName != "shop-main-0123456-rerun-" || r.Spec.Commit != sha || r.Spec.Resume ||
		r.Labels[LabelRerunOf] != b.Name || r.Labels[LabelPipeline] != "shop" || r.OwnerReferences[0].UID != "p-uid" {
		t.Fatalf("rerun %+v", r)
	}
	r.Name = r.GenerateName + "abcde"
	if again := RerunOf(r); again.GenerateName != "shop-main-0123456-rerun-" {
		t.Fatalf("a rerun of a rerun is named %q", again.GenerateName)
	}
	if _, ok := b.Labels[LabelRerunOf]; ok {
		t.Fatal("RerunOf changed the original's labels")
	}
}
