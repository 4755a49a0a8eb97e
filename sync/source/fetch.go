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

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Fetcher keeps one cached clone per key (one per Sync) under CacheDir and
// brings it to the wanted revision. Its zero value with CacheDir set is ready
// to use; it must not be copied after first use.
//
// Layout of CacheDir/<escaped key>/: git/ (a bare repository, shallow where
// possible), trees/<commit>/ (checked-out trees: the current one and the
// previous one), url (the repository the cache belongs to), current.
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
// ErrAuth, ErrHostKey, ErrRefNotFound or ErrRepositoryNotFound.
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
	var (
		refs []*plumbing.Reference
		want plumbing.Hash
		name plumbing.ReferenceName
	)
	if ref.Commit != "" {
		if want, err = parseCommit(s.ep, "fetch", ref.Commit); err != nil {
			return Revision{}, err
		}
	} else {
		if refs, err = s.list(ctx, "fetch"); err != nil {
			return Revision{}, err
		}
		name = refNameOf(ref)
		var ok bool
		if want, ok = lookup(refs, name); !ok {
			return Revision{}, newError("fetch", s.ep, ErrRefNotFound, describeRef(ref)+" not found", nil)
		}
	}
	if rev, ok := f.cached(key, s.ep.display, ref, want); ok {
		return rev, nil
	}

	c, err := openCache(dir, s.ep.display)
	if err != nil {
		return Revision{}, err
	}
	if !c.has(want) {
		if ref.Commit != "" {
			if refs == nil {
				if refs, err = s.list(ctx, "fetch"); err != nil {
					return Revision{}, err
				}
			}
			if _, err := fetchCommit(ctx, "fetch", s, &c.repoHolder, refs, want); err != nil {
				return Revision{}, err
			}
		} else if want, err = c.fetchRef(ctx, s, name); err != nil {
			return Revision{}, err
		}
	}
	commit, err := c.repo.CommitObject(want)
	if err != nil {
		return Revision{}, fmt.Errorf("fetch %s: read commit %s: %w", s.ep.display, want, err)
	}
	treeDir, err := c.checkout(commit)
	if err != nil {
		return Revision{}, fmt.Errorf("fetch %s: check out %s: %w", s.ep.display, want, err)
	}
	rev := revisionOf(ref, commit, treeDir)
	f.remember(key, s.ep.display, ref, rev)
	return rev, nil
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
	dir, gitDir, treesDir string
}

// openCache opens (or creates) the cache of one key; a cache that belongs to
// another URL, or that cannot be opened, is started over.
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
			return nil, fmt.Errorf("fetch cache %s: %w", dir, err)
		}
		return c, nil
	}
	repo, err := git.PlainOpen(c.gitDir)
	if err != nil {
		return c, c.startOver()
	}
	c.repo = repo
	return c, nil
}

// startOver replaces the git repository with an empty one; checked-out
// trees are kept, so the last good revision stays readable.
func (c *cache) startOver() error {
	if err := os.RemoveAll(c.gitDir); err != nil {
		return fmt.Errorf("fetch cache %s: %w", c.dir, err)
	}
	repo, err := git.PlainInit(c.gitDir, true)
	if err != nil {
		return fmt.Errorf("fetch cache %s: %w", c.dir, err)
	}
	c.repo = repo
	return nil
}

// fetchRef fetches one branch or tag with depth 1 and returns the commit it
// points to now. A local failure (a damaged cache, a shallow history go-git
// cannot extend) starts the repository over once.
func (c *cache) fetchRef(ctx context.Context, s *session, name plumbing.ReferenceName) (plumbing.Hash, error) {
	spec := config.RefSpec("+" + name.String() + ":" + name.String())
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 {
			if err := c.startOver(); err != nil {
				return plumbing.ZeroHash, err
			}
		}
		err := s.fetch(ctx, "fetch", c.repo.Storer, 1, spec)
		var e *Error
		if err != nil && errors.As(err, &e) && e.Kind != nil {
			return plumbing.ZeroHash, err // the remote's answer: starting over will not change it
		}
		if err == nil {
			h, rerr := resolveLocal(c.repo, name)
			if rerr == nil && c.has(h) {
				return h, nil
			}
			err = rerr
			if err == nil {
				err = fmt.Errorf("commit %s of %s missing after fetch", h, name)
			}
		}
		lastErr = err
	}
	return plumbing.ZeroHash, fmt.Errorf("fetch %s: %w", s.ep.display, lastErr)
}

// checkout makes trees/<commit> (written to a temporary name, then renamed,
// so it is complete or absent) and keeps only it and the previous one.
func (c *cache) checkout(commit *object.Commit) (string, error) {
	hash := commit.Hash.String()
	dst := filepath.Join(c.treesDir, hash)
	if _, err := os.Stat(dst); err != nil {
		tmp, err := os.MkdirTemp(c.treesDir, hash+".tmp-")
		if err != nil {
			return "", err
		}
		if err := exportTree(commit, tmp); err != nil {
			os.RemoveAll(tmp)
			return "", err
		}
		if err := os.Rename(tmp, dst); err != nil {
			os.RemoveAll(tmp)
			return "", err
		}
	}
	currentFile := filepath.Join(c.dir, "current")
	prev, _ := os.ReadFile(currentFile)
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
