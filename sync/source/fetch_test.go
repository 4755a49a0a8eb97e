package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fixture is a repository with history on two branches and two tags:
//
//	main:    c1 (v1, lightweight) -> c2 (v2, annotated) -> c3
//	feature: c2 -> f1
type fixture struct {
	repo           *testRepo
	c1, c2, c3, f1 string
}

func newFixture(t testing.TB, dir string) fixture {
	r := newTestRepo(t, dir)
	fx := fixture{repo: r}
	fx.c1 = r.commit("first: add app\n\nlonger body", map[string]string{"apps/a.yaml": "name: a\n", "README.md": "hello\n"})
	r.tag("v1", false)
	fx.c2 = r.commit("second", map[string]string{"apps/b.yaml": "name: b\n"})
	r.tag("v2", true)
	r.branch("feature")
	fx.f1 = r.commit("feature work", map[string]string{"apps/f.yaml": "name: f\n"})
	r.switchTo("main")
	fx.c3 = r.commit("third", map[string]string{"apps/a.yaml": ""})
	return fx
}

func TestFetchRefs(t *testing.T) {
	fx := newFixture(t, t.TempDir())
	tests := []struct {
		name       string
		ref        Ref
		wantCommit string
		wantRef    string
		wantMsg    string
		present    []string
		absent     []string
	}{
		{name: "default branch", ref: Ref{}, wantCommit: fx.c3, wantRef: "main", wantMsg: "third", present: []string{"apps/b.yaml"}, absent: []string{"apps/a.yaml", "apps/f.yaml"}},
		{name: "branch", ref: Ref{Branch: "feature"}, wantCommit: fx.f1, wantRef: "feature", wantMsg: "feature work", present: []string{"apps/a.yaml", "apps/f.yaml"}},
		{name: "lightweight tag", ref: Ref{Tag: "v1"}, wantCommit: fx.c1, wantRef: "v1", wantMsg: "first: add app", present: []string{"apps/a.yaml"}, absent: []string{"apps/b.yaml"}},
		{name: "annotated tag", ref: Ref{Tag: "v2"}, wantCommit: fx.c2, wantRef: "v2", wantMsg: "second", present: []string{"apps/a.yaml", "apps/b.yaml"}},
		{name: "commit at a branch tip", ref: Ref{Commit: fx.f1}, wantCommit: fx.f1, wantMsg: "feature work", present: []string{"apps/f.yaml"}},
		{name: "commit deep in history", ref: Ref{Commit: fx.c1}, wantCommit: fx.c1, wantMsg: "first: add app", present: []string{"apps/a.yaml"}, absent: []string{"apps/b.yaml"}},
		{name: "commit with its branch", ref: Ref{Branch: "main", Commit: fx.c2}, wantCommit: fx.c2, wantRef: "main", wantMsg: "second"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &Fetcher{CacheDir: t.TempDir()}
			rev, err := f.Fetch(context.Background(), "ns/sync", fx.repo.url(), tt.ref, Auth{})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if rev.Commit != tt.wantCommit || rev.Ref != tt.wantRef || rev.Message != tt.wantMsg {
				t.Errorf("got ref %q commit %s message %q; want %q %s %q", rev.Ref, rev.Commit, rev.Message, tt.wantRef, tt.wantCommit, tt.wantMsg)
			}
			if rev.Author != "Ada Lovelace <ada@example.com>" {
				t.Errorf("author %q", rev.Author)
			}
			for _, p := range tt.present {
				if _, err := os.Stat(filepath.Join(rev.Dir, p)); err != nil {
					t.Errorf("%s missing from checkout: %v", p, err)
				}
			}
			for _, p := range tt.absent {
				if _, err := os.Stat(filepath.Join(rev.Dir, p)); err == nil {
					t.Errorf("%s present in checkout of %s", p, rev)
				}
			}
			if _, err := os.Stat(filepath.Join(rev.Dir, ".git")); err == nil {
				t.Errorf("checkout has a .git folder")
			}
		})
	}
}

func TestFetchMissingRef(t *testing.T) {
	fx := newFixture(t, t.TempDir())
	tests := []struct {
		name     string
		ref      Ref
		wantText string
	}{
		{"branch", Ref{Branch: "nope"}, `branch "nope" not found`},
		{"tag", Ref{Tag: "v9"}, `tag "v9" not found`},
		{"commit", Ref{Commit: strings.Repeat("ab", 20)}, "commit " + strings.Repeat("ab", 20) + " not found"},
		{"short commit", Ref{Commit: fx.c1[:7]}, "not a full 40-character sha1 hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &Fetcher{CacheDir: t.TempDir()}
			_, err := f.Fetch(context.Background(), "ns/sync", fx.repo.url(), tt.ref, Auth{})
			if !errors.Is(err, ErrRefNotFound) {
				t.Fatalf("want ErrRefNotFound, got %v", err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not say %q", err, tt.wantText)
			}
		})
	}
}

func TestFetchPicksUpNewCommits(t *testing.T) {
	for _, transport := range []string{"file", "http", "ssh"} {
		t.Run(transport, func(t *testing.T) {
			srv, fx := newServer(t)
			url, auth := fx.repo.url(), Auth{}
			switch transport {
			case "http":
				url = startHTTP(t, srv)
			case "ssh":
				s := startSSH(t, srv)
				url, auth = s.url, Auth{Identity: s.client, KnownHosts: knownHostsLine(s.addr, s.hostKey)}
			}
			testPicksUpNewCommits(t, fx, url, auth)
		})
	}
}

func testPicksUpNewCommits(t *testing.T, fx fixture, url string, auth Auth) {
	f := &Fetcher{CacheDir: t.TempDir()}
	ctx := context.Background()
	first, err := f.Fetch(ctx, "ns/sync", url, Ref{}, auth)
	if err != nil {
		t.Fatal(err)
	}

	again, err := f.Fetch(ctx, "ns/sync", url, Ref{}, auth)
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("unchanged remote gave a different revision: %+v, then %+v", first, again)
	}

	c4 := fx.repo.commit("fourth", map[string]string{"apps/c.yaml": "name: c\n"})
	second, err := f.Fetch(ctx, "ns/sync", url, Ref{}, auth)
	if err != nil {
		t.Fatal(err)
	}
	if second.Commit != c4 || second.String() != "main@sha1:"+c4 {
		t.Fatalf("got %s, want main@sha1:%s", second, c4)
	}
	if got := readFile(t, second.Dir, "apps/c.yaml"); got != "name: c\n" {
		t.Errorf("apps/c.yaml = %q", got)
	}
	if _, err := os.Stat(first.Dir); err != nil {
		t.Errorf("previous checkout removed too early: %v", err)
	}

	c5 := fx.repo.commit("fifth", map[string]string{"apps/c.yaml": "name: c2\n"})
	third, err := f.Fetch(ctx, "ns/sync", url, Ref{}, auth)
	if err != nil {
		t.Fatal(err)
	}
	if third.Commit != c5 || readFile(t, third.Dir, "apps/c.yaml") != "name: c2\n" {
		t.Fatalf("got %s with apps/c.yaml %q", third, readFile(t, third.Dir, "apps/c.yaml"))
	}
	if _, err := os.Stat(second.Dir); err != nil {
		t.Errorf("previous checkout removed: %v", err)
	}
	if _, err := os.Stat(first.Dir); !os.IsNotExist(err) {
		t.Errorf("checkout two revisions back still on disk (err %v)", err)
	}

	// A new Fetcher (a restarted controller) finds the cache on disk.
	restarted := &Fetcher{CacheDir: f.CacheDir}
	rev, err := restarted.Fetch(ctx, "ns/sync", url, Ref{}, auth)
	if err != nil || rev != third {
		t.Errorf("after restart got %+v, %v; want %+v", rev, err, third)
	}
}

func TestFetchFailureKeepsLastGoodCheckout(t *testing.T) {
	repoDir := filepath.Join(t.TempDir(), "repo")
	fx := newFixture(t, repoDir)
	f := &Fetcher{CacheDir: t.TempDir()}
	ctx := context.Background()
	good, err := f.Fetch(ctx, "ns/sync", fx.repo.url(), Ref{}, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(repoDir); err != nil {
		t.Fatal(err)
	}
	_, err = f.Fetch(ctx, "ns/sync", "file://"+repoDir, Ref{}, Auth{})
	if !errors.Is(err, ErrRepositoryNotFound) {
		t.Fatalf("want ErrRepositoryNotFound, got %v", err)
	}
	if got := readFile(t, good.Dir, "apps/b.yaml"); got != "name: b\n" {
		t.Errorf("last good checkout changed: apps/b.yaml = %q", got)
	}
	_, err = f.Fetch(ctx, "ns/sync", "file://"+repoDir, Ref{Branch: "other"}, Auth{})
	if err == nil {
		t.Fatal("fetch of a removed repository succeeded")
	}
	if _, err := os.Stat(good.Dir); err != nil {
		t.Errorf("last good checkout gone: %v", err)
	}
}

func TestFetchPlainPathAndURLChange(t *testing.T) {
	a := newFixture(t, filepath.Join(t.TempDir(), "a"))
	b := newTestRepo(t, filepath.Join(t.TempDir(), "b"))
	cb := b.commit("other repo", map[string]string{"x.yaml": "x: 1\n"})
	f := &Fetcher{CacheDir: t.TempDir()}
	ctx := context.Background()

	rev, err := f.Fetch(ctx, "ns/sync", a.repo.dir, Ref{Commit: a.c1}, Auth{})
	if err != nil || rev.Commit != a.c1 {
		t.Fatalf("plain path: %+v, %v", rev, err)
	}
	// The same key pointed at another repository must not serve a commit
	// of the first one from its cache.
	_, err = f.Fetch(ctx, "ns/sync", b.url(), Ref{Commit: a.c1}, Auth{})
	if !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("commit of the old repository after a URL change: want ErrRefNotFound, got %v", err)
	}
	rev, err = f.Fetch(ctx, "ns/sync", b.url(), Ref{}, Auth{})
	if err != nil || rev.Commit != cb {
		t.Fatalf("after URL change: %+v, %v", rev, err)
	}
}

func TestFetchConcurrentKeys(t *testing.T) {
	fx := newFixture(t, t.TempDir())
	f := &Fetcher{CacheDir: t.TempDir()}
	refs := []Ref{{}, {Branch: "feature"}, {Tag: "v1"}, {Commit: fx.c2}}
	want := []string{fx.c3, fx.f1, fx.c1, fx.c2}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			k := i % len(refs)
			// Two goroutines share each key: same-key calls are serialized.
			rev, err := f.Fetch(context.Background(), "ns/sync-"+string(rune('a'+k)), fx.repo.url(), refs[k], Auth{})
			if err != nil {
				errs <- err
				return
			}
			if rev.Commit != want[k] {
				errs <- errors.New("key " + string(rune('a'+k)) + " got " + rev.Commit)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestFetchRejectsBadKeys(t *testing.T) {
	f := &Fetcher{CacheDir: t.TempDir()}
	for _, key := range []string{"", "..", "."} {
		if _, err := f.Fetch(context.Background(), key, "file:///nonexistent", Ref{}, Auth{}); err == nil || errors.Is(err, ErrRepositoryNotFound) {
			t.Errorf("key %q: want a key error, got %v", key, err)
		}
	}
}

// A shallow cache does not have the history behind its first commit, but an
// incremental fetch lets the server assume it does. A commit that brings back
// a file version from that history must still be checked out whole.
func TestFetchRevertToContentOutsideShallowHistory(t *testing.T) {
	r := newTestRepo(t, t.TempDir())
	r.commit("A", map[string]string{"app.yaml": "version: A\n", "other.yaml": "x: 1\n"})
	r.commit("B", map[string]string{"app.yaml": "version: B\n"})
	f := &Fetcher{CacheDir: t.TempDir()}
	ctx := context.Background()
	if _, err := f.Fetch(ctx, "ns/revert", r.url(), Ref{}, Auth{}); err != nil {
		t.Fatal(err)
	}
	reverted := r.commit("revert to A", map[string]string{"app.yaml": "version: A\n"})
	rev, err := f.Fetch(ctx, "ns/revert", r.url(), Ref{}, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if rev.Commit != reverted || readFile(t, rev.Dir, "app.yaml") != "version: A\n" || readFile(t, rev.Dir, "other.yaml") != "x: 1\n" {
		t.Errorf("got %s with app.yaml %q", rev, readFile(t, rev.Dir, "app.yaml"))
	}
}

// Incremental checkouts patch an old tree: files removed, added, turned into
// folders and executable bits must all come out as a fresh checkout would.
func TestFetchIncrementalCheckoutMatchesFullCheckout(t *testing.T) {
	r := newTestRepo(t, t.TempDir())
	r.commit("one", map[string]string{"a/b/c.yaml": "c\n", "d.yaml": "d\n", "keep.yaml": "k\n"})
	f := &Fetcher{CacheDir: t.TempDir()}
	ctx := context.Background()
	steps := []map[string]string{
		{"e.yaml": "e\n"},
		{"a/b/c.yaml": "", "a": "now a file\n", "d.yaml": "", "d.yaml/inner.yaml": "now a folder\n"},
		{"a": "", "a/x.yaml": "folder again\n", "keep.yaml": "k2\n"},
		{"e.yaml": ""},
	}
	for i, files := range append([]map[string]string{{}}, steps...) {
		if i > 0 {
			r.commit("step", files)
		}
		rev, err := f.Fetch(ctx, "ns/inc", r.url(), Ref{}, Auth{})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		fresh, err := (&Fetcher{CacheDir: t.TempDir()}).Fetch(ctx, "ns/fresh", r.url(), Ref{}, Auth{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := listTree(t, rev.Dir), listTree(t, fresh.Dir); got != want {
			t.Errorf("step %d: incremental checkout\n%s\nfresh checkout\n%s", i, got, want)
		}
	}
}

// listTree prints every path under dir with its kind and content.
func listTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			b.WriteString(rel + "/\n")
			return nil
		}
		content, err := os.ReadFile(p)
		b.WriteString(rel + ": " + string(content))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestFetcherRemove(t *testing.T) {
	fx := newFixture(t, t.TempDir())
	f := &Fetcher{CacheDir: t.TempDir()}
	ctx := context.Background()
	rev, err := f.Fetch(ctx, "ns/gone", fx.repo.url(), Ref{}, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(ctx, "ns/gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rev.Dir); !os.IsNotExist(err) {
		t.Errorf("checkout still there after Remove: %v", err)
	}
	if entries, _ := os.ReadDir(f.CacheDir); len(entries) != 0 {
		t.Errorf("cache dir not empty: %v", entries)
	}
	again, err := f.Fetch(ctx, "ns/gone", fx.repo.url(), Ref{}, Auth{})
	if err != nil || again.Commit != rev.Commit {
		t.Errorf("fetch after Remove: %+v, %v", again, err)
	}
}

// One Sync whose spec.ref is edited back and forth: every switch is served
// from the same cache, shallow or not.
func TestFetchSwitchingRefsWithOneKey(t *testing.T) {
	fx := newFixture(t, t.TempDir())
	f := &Fetcher{CacheDir: t.TempDir()}
	steps := []struct {
		ref  Ref
		want string
	}{
		{Ref{}, fx.c3}, {Ref{Branch: "feature"}, fx.f1}, {Ref{Tag: "v1"}, fx.c1}, {Ref{Commit: fx.c2}, fx.c2},
		{Ref{Tag: "v2"}, fx.c2}, {Ref{}, fx.c3}, {Ref{Commit: fx.c1}, fx.c1}, {Ref{Branch: "feature"}, fx.f1},
	}
	for i, st := range steps {
		rev, err := f.Fetch(context.Background(), "ns/switch", fx.repo.url(), st.ref, Auth{})
		if err != nil {
			t.Fatalf("step %d (%+v): %v", i, st.ref, err)
		}
		if rev.Commit != st.want {
			t.Errorf("step %d (%+v): got %s, want %s", i, st.ref, rev.Commit, st.want)
		}
		fresh, err := (&Fetcher{CacheDir: t.TempDir()}).Fetch(context.Background(), "ns/fresh", fx.repo.url(), st.ref, Auth{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := listTree(t, rev.Dir), listTree(t, fresh.Dir); got != want {
			t.Errorf("step %d: cached checkout\n%s\nfresh checkout\n%s", i, got, want)
		}
	}
}

// Every incremental fetch adds a pack; past a limit the cache starts over
// with one, and what it serves does not change.
func TestFetchCompactsPacks(t *testing.T) {
	saved := tooManyPacks
	tooManyPacks = 3
	defer func() { tooManyPacks = saved }()

	fx := newFixture(t, t.TempDir())
	f := &Fetcher{CacheDir: t.TempDir()}
	c := &cache{gitDir: filepath.Join(f.CacheDir, "ns%2Fpacks", "git")}
	maxPacks := 0
	for i := range 8 {
		want := fx.repo.commit("change", map[string]string{"apps/n.yaml": strings.Repeat("n", i+1) + "\n"})
		rev, err := f.Fetch(context.Background(), "ns/packs", fx.repo.url(), Ref{}, Auth{})
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		if rev.Commit != want || readFile(t, rev.Dir, "apps/n.yaml") != strings.Repeat("n", i+1)+"\n" || readFile(t, rev.Dir, "apps/b.yaml") != "name: b\n" {
			t.Fatalf("fetch %d: got %s with apps/n.yaml %q", i, rev, readFile(t, rev.Dir, "apps/n.yaml"))
		}
		maxPacks = max(maxPacks, c.packCount())
	}
	if maxPacks > tooManyPacks {
		t.Errorf("cache reached %d packs with a limit of %d", maxPacks, tooManyPacks)
	}
}
