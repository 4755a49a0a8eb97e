package source

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	gitcache "github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Fetcher keeps one cached clone per key (one per Sync) under CacheDir and
// brings it to the wanted revision. Its zero value with CacheDir set is ready
// to use; it must not be copied after first use.
//
// Layout of CacheDir/<escaped key>/: git/ (a bare repository, shallow where
// possible), trees/<commit>/ (checked-out trees: the current one and the
// previous one), url (the repository the cache belongs to), current.
// One Fetcher per CacheDir: the per-key serialization is within a process.
type Fetcher struct {
	// CacheDir holds the caches; created if missing.
	CacheDir string

	mu    sync.Mutex
	locks map[string]*keyLock
	last  map[string]lastFetch
}

type keyLock struct {
	ch    chan struct{}
	users int
}

// lastFetch lets an unchanged remote be answered without opening the
// repository: one ls-remote round trip and a stat.
type lastFetch struct {
	url, ref string
	rev      Revision
}

// Fetch brings url at ref into the cache of key and returns the revision
// with its tree checked out in Revision.Dir. The first fetch is shallow
// (depth 1); later ones ask the server only for what is new, and when the
// branch has not moved, Fetch costs one ls-remote round trip.
//
// A failed Fetch changes nothing that an earlier Revision.Dir points to.
// Calls with different keys run concurrently; calls with the same key wait
// for each other. Errors are *Error values that match ErrUnreachable,
// ErrAuth, ErrHostKey, ErrRefNotFound or ErrRepositoryNotFound. A failed
// Fetch that knows which commit it tried (a pinned commit, or one the
// remote named before the transfer failed) returns a Revision naming it,
// with no Dir.
func (f *Fetcher) Fetch(ctx context.Context, key, rawURL string, ref Ref, auth Auth) (Revision, error) {
	if f.CacheDir == "" {
		return Revision{}, errors.New("fetcher has no cache directory")
	}
	dir, err := keyDir(f.CacheDir, key)
	if err != nil {
		return Revision{}, err
	}
	unlock, err := f.lock(ctx, key)
	if err != nil {
		return Revision{}, err
	}
	defer unlock()

	s, err := newSession("fetch", rawURL, auth)
	if err != nil {
		return Revision{}, err
	}
	want, refs, err := s.resolve(ctx, ref)
	if err != nil {
		return Revision{Ref: refName(ref), Commit: ref.Commit}, err
	}
	tried := Revision{Ref: refName(ref), Commit: want.String()}
	if rev, ok := f.cached(key, s.ep.display, ref, want); ok {
		return rev, nil
	}
	c, err := openCache(dir, s.ep.display)
	if err != nil {
		return Revision{}, err
	}
	defer c.close()
	if want, err = c.ensure(ctx, s, ref, refs, want); err != nil {
		return tried, err
	}
	commit, err := c.repo.CommitObject(want)
	if err != nil {
		return tried, fmt.Errorf("fetch %s: read commit %s: %w", s.ep.display, want, err)
	}
	treeDir, err := c.checkout(commit)
	if err != nil {
		return tried, fmt.Errorf("fetch %s: check out %s: %w", s.ep.display, want, err)
	}
	rev := revisionOf(ref, commit, treeDir)
	f.remember(key, s.ep.display, ref, rev)
	return rev, nil
}

// resolve finds the commit a Ref wants: a pinned commit as it is (no
// network), a branch or tag through ls-remote, whose answer is returned too.
func (s *session) resolve(ctx context.Context, ref Ref) (plumbing.Hash, []*plumbing.Reference, error) {
	if ref.Commit != "" {
		h, err := parseCommit(s.ep, "fetch", ref.Commit)
		return h, nil, err
	}
	refs, err := s.list(ctx, "fetch")
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	h, ok := lookup(refs, refNameOf(ref))
	if !ok {
		return plumbing.ZeroHash, nil, newError("fetch", s.ep, ErrRefNotFound, describeRef(ref)+" not found", nil)
	}
	return h, refs, nil
}

// ensure makes the wanted commit and its whole tree present in the cache,
// fetching only if they are not, and returns the commit (for a branch, the
// one fetched, which may be newer than ls-remote said a moment ago).
func (c *cache) ensure(ctx context.Context, s *session, ref Ref, refs []*plumbing.Reference, want plumbing.Hash) (plumbing.Hash, error) {
	// A finished tree of a commit in the store means its objects were all
	// here; only otherwise is the store checked. (Trees outlive a change of
	// URL; the commit must be in this repository.)
	_, treeErr := os.Stat(filepath.Join(c.treesDir, want.String()))
	if (treeErr == nil && c.has(want) || c.complete(want) == nil) && c.tagCurrent(ref, want) {
		return want, nil
	}
	if ref.Commit == "" {
		return c.fetchRef(ctx, s, refNameOf(ref))
	}
	if refs == nil {
		var err error
		if refs, err = s.list(ctx, "fetch"); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	_, err := fetchCommit(ctx, "fetch", s, &c.repoHolder, refs, want)
	return want, err
}

// Remove deletes the cache of key, for a Sync that was deleted. It waits for
// a Fetch of the same key to finish first.
func (f *Fetcher) Remove(ctx context.Context, key string) error {
	dir, err := keyDir(f.CacheDir, key)
	if err != nil {
		return err
	}
	unlock, err := f.lock(ctx, key)
	if err != nil {
		return err
	}
	defer unlock()
	f.mu.Lock()
	delete(f.last, key)
	f.mu.Unlock()
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove fetch cache of %s: %w", key, err)
	}
	return nil
}

// refNameOf is the reference a branch or tag Ref follows.
func refNameOf(ref Ref) plumbing.ReferenceName {
	if ref.Tag != "" {
		return plumbing.NewTagReferenceName(ref.Tag)
	}
	if ref.Branch != "" {
		return plumbing.NewBranchReferenceName(ref.Branch)
	}
	return plumbing.NewBranchReferenceName(DefaultBranch)
}

func describeRef(ref Ref) string {
	switch {
	case ref.Commit != "":
		return fmt.Sprintf("commit %q", ref.Commit)
	case ref.Tag != "":
		return fmt.Sprintf("tag %q", ref.Tag)
	case ref.Branch != "":
		return fmt.Sprintf("branch %q", ref.Branch)
	}
	return fmt.Sprintf("branch %q", DefaultBranch)
}

// keyDir maps a key such as "namespace/name" to one directory of the cache.
func keyDir(cacheDir, key string) (string, error) {
	if strings.TrimSpace(key) == "" {
		return "", errors.New("fetch: empty cache key")
	}
	esc := url.PathEscape(key)
	if esc == "." || esc == ".." {
		return "", fmt.Errorf("fetch: invalid cache key %q", key)
	}
	return filepath.Join(cacheDir, esc), nil
}

// lock serializes calls with the same key; waiting respects ctx.
func (f *Fetcher) lock(ctx context.Context, key string) (func(), error) {
	f.mu.Lock()
	if f.locks == nil {
		f.locks = map[string]*keyLock{}
	}
	l := f.locks[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		f.locks[key] = l
	}
	l.users++
	f.mu.Unlock()

	release := func() {
		f.mu.Lock()
		if l.users--; l.users == 0 {
			delete(f.locks, key)
		}
		f.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, fmt.Errorf("fetch %s: waiting for another fetch of the same key: %w", key, ctx.Err())
	}
}

func (f *Fetcher) cached(key, url string, ref Ref, want plumbing.Hash) (Revision, bool) {
	f.mu.Lock()
	l, ok := f.last[key]
	f.mu.Unlock()
	if !ok || l.url != url || l.ref != refName(ref) || l.rev.Commit != want.String() {
		return Revision{}, false
	}
	if _, err := os.Stat(l.rev.Dir); err != nil {
		return Revision{}, false
	}
	return l.rev, true
}

func (f *Fetcher) remember(key, url string, ref Ref, rev Revision) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil {
		f.last = map[string]lastFetch{}
	}
	f.last[key] = lastFetch{url: url, ref: refName(ref), rev: rev}
}

// cache is the on-disk state of one key.
type cache struct {
	repoHolder
	st                    *filesystem.Storage
	dir, gitDir, treesDir string
}

// openCache opens (or creates) the cache of one key; a cache that belongs to
// another URL, or that cannot be opened, is started over. Close it after use.
func openCache(dir, url string) (*cache, error) {
	c := &cache{dir: dir, gitDir: filepath.Join(dir, "git"), treesDir: filepath.Join(dir, "trees")}
	c.reset = c.startOver
	if err := os.MkdirAll(c.treesDir, 0o755); err != nil {
		return nil, fmt.Errorf("fetch cache %s: %w", dir, err)
	}
	urlFile := filepath.Join(dir, "url")
	prev, _ := os.ReadFile(urlFile)
	if string(prev) != url {
		if err := c.startOver(); err != nil {
			return nil, err
		}
		if err := os.WriteFile(urlFile, []byte(url), 0o644); err != nil {
			c.close()
			return nil, fmt.Errorf("fetch cache %s: %w", dir, err)
		}
		return c, nil
	}
	st := c.storage()
	repo, err := git.Open(st, nil)
	if err != nil {
		_ = st.Close()
		return c, c.startOver()
	}
	c.repo, c.st = repo, st
	return c, nil
}

// storage opens the store with its pack files kept open for the whole
// Fetch instead of reopened for every object read. (Not ExclusiveAccess:
// that caches the list of packs, and a fetch adds one.)
func (c *cache) storage() *filesystem.Storage {
	return filesystem.NewStorageWithOptions(osfs.New(c.gitDir), gitcache.NewObjectLRU(16*gitcache.MiByte),
		filesystem.Options{KeepDescriptors: true})
}

func (c *cache) close() {
	if c.st != nil {
		_ = c.st.Close()
		c.st = nil
	}
}

// startOver replaces the git repository with an empty one; checked-out
// trees are kept, so the last good revision stays readable.
func (c *cache) startOver() error {
	c.close()
	if err := os.RemoveAll(c.gitDir); err != nil {
		return fmt.Errorf("fetch cache %s: %w", c.dir, err)
	}
	st := c.storage()
	repo, err := git.Init(st, nil)
	if err != nil {
		_ = st.Close()
		return fmt.Errorf("fetch cache %s: %w", c.dir, err)
	}
	c.repo, c.st = repo, st
	return nil
}

// tooManyPacks: every incremental fetch adds a small pack, and every object
// lookup consults each pack's index; past this many, the next fetch starts
// over with one shallow pack. (A variable so a test can make it small.)
var tooManyPacks = 50

func (c *cache) packCount() int {
	entries, _ := os.ReadDir(filepath.Join(c.gitDir, "objects", "pack"))
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".pack") {
			n++
		}
	}
	return n
}

// fetchRef fetches one branch or tag and returns the commit it points to
// now, with its whole tree in the store. Strategies, cheapest first:
// incremental (depth 0 on top of what the cache has: only new objects),
// shallow (depth 1: the whole tree of the commit), and starting over. A
// remote's answer (unreachable, auth, not found) ends the attempts at once.
func (c *cache) fetchRef(ctx context.Context, s *session, name plumbing.ReferenceName) (plumbing.Hash, error) {
	spec := config.RefSpec("+" + name.String() + ":" + name.String())
	fetch := func(depth int) func() error {
		return func() error { return s.fetch(ctx, "fetch", c.repo.Storer, depth, spec) }
	}
	fresh := func() error {
		if err := c.startOver(); err != nil {
			return err
		}
		return fetch(1)()
	}
	var strategies []func() error
	switch refs, err := c.repo.References(); {
	case err != nil || countRefs(refs) == 0:
		strategies = []func() error{fetch(1), fresh}
	case c.packCount() >= tooManyPacks:
		strategies = []func() error{fresh}
	default:
		strategies = []func() error{fetch(0), fetch(1), fresh}
	}
	var lastErr error
	for _, try := range strategies {
		err := try()
		var e *Error
		if errors.As(err, &e) && e.Kind != nil {
			return plumbing.ZeroHash, err
		}
		if err == nil {
			var h plumbing.Hash
			if h, err = resolveLocal(c.repo, name); err == nil {
				if err = c.complete(h); err == nil {
					return h, nil
				}
			}
		}
		lastErr = err
	}
	return plumbing.ZeroHash, fmt.Errorf("fetch %s: %w", s.ep.display, lastErr)
}

func countRefs(it storer.ReferenceIter) int {
	n := 0
	_ = it.ForEach(func(r *plumbing.Reference) error {
		if r.Type() == plumbing.HashReference {
			n++
		}
		return nil
	})
	return n
}

// complete reports whether the commit and its whole tree are in the store;
// the current checkout's commit, whose tree was complete, serves as a base.
func (c *cache) complete(h plumbing.Hash) error {
	commit, err := c.repo.CommitObject(h)
	if err != nil {
		return err
	}
	var base *object.Commit
	if cur, err := os.ReadFile(filepath.Join(c.dir, "current")); err == nil && fullHash.Match(cur) {
		base, _ = c.repo.CommitObject(plumbing.NewHash(string(cur)))
	}
	return treeComplete(c.repo, commit, base)
}

// checkout makes trees/<commit>: complete or absent, since it is built under
// a temporary name and renamed. It reuses the oldest tree that is not the
// current one (which would be removed anyway), changing only the files that
// differ, and otherwise writes the whole tree. Only the new tree and the
// previous one are kept.
func (c *cache) checkout(commit *object.Commit) (string, error) {
	hash := commit.Hash.String()
	dst := filepath.Join(c.treesDir, hash)
	currentFile := filepath.Join(c.dir, "current")
	prev, _ := os.ReadFile(currentFile)
	if _, err := os.Stat(dst); err != nil {
		tmp, err := c.buildTree(commit, string(prev))
		if err != nil {
			return "", err
		}
		if err := os.Rename(tmp, dst); err != nil {
			_ = os.RemoveAll(tmp)
			return "", err
		}
	}
	if string(prev) == hash {
		return dst, nil
	}
	if err := os.WriteFile(currentFile, []byte(hash), 0o644); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(c.treesDir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if n := e.Name(); n != hash && n != string(prev) {
			// Best effort: a leftover tree only costs disk.
			_ = os.RemoveAll(filepath.Join(c.treesDir, n))
		}
	}
	return dst, nil
}

// buildTree writes the commit's tree under a temporary name in trees/.
func (c *cache) buildTree(commit *object.Commit, current string) (string, error) {
	tmp := filepath.Join(c.treesDir, commit.Hash.String()+".tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	if old, from := c.recyclable(current); old != "" {
		if err := os.Rename(old, tmp); err == nil {
			if err := applyDiff(c.repo.Storer, from, commit, tmp); err == nil {
				return tmp, nil
			}
			// A tree we cannot patch is rewritten whole.
			if err := os.RemoveAll(tmp); err != nil {
				return "", err
			}
		}
	}
	if err := exportTree(commit, tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return "", err
	}
	return tmp, nil
}

// recyclable finds a finished tree other than the current one whose commit
// is still in the store.
func (c *cache) recyclable(current string) (string, *object.Commit) {
	entries, err := os.ReadDir(c.treesDir)
	if err != nil {
		return "", nil
	}
	for _, e := range entries {
		n := e.Name()
		if n == current || !e.IsDir() || !fullHash.MatchString(n) {
			continue
		}
		if from, err := c.repo.CommitObject(plumbing.NewHash(n)); err == nil {
			return filepath.Join(c.treesDir, n), from
		}
	}
	return "", nil
}
