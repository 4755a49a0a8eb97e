package source

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

var fullHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// parseCommit accepts only a full hash: a short one is ambiguous and cannot
// be asked of a server.
func parseCommit(ep endpoint, op, s string) (plumbing.Hash, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if !fullHash.MatchString(s) {
		return plumbing.ZeroHash, newError(op, ep, ErrRefNotFound,
			fmt.Sprintf("commit %q is not a full 40-character sha1 hash", s), nil)
	}
	return plumbing.NewHash(s), nil
}

// repoHolder is a repository that can be started over (for the fetch cache)
// when a shallow history must become a full one.
type repoHolder struct {
	repo  *git.Repository
	reset func() error // starts over with an empty repository
}

func (h *repoHolder) has(c plumbing.Hash) bool {
	_, err := h.repo.CommitObject(c)
	return err == nil
}

// fetchCommit brings one exact commit into the repository as cheaply as the
// server allows: the branch or tag that points to it (depth 1), else the
// commit itself if the server accepts a sha1 in "want" (depth 1), else every
// branch and tag with full history. It returns the ref fetched, if any.
func fetchCommit(ctx context.Context, op string, s *session, h *repoHolder, refs []*plumbing.Reference, want plumbing.Hash) (plumbing.ReferenceName, error) {
	for _, r := range refs {
		name := plumbing.ReferenceName(strings.TrimSuffix(r.Name().String(), "^{}"))
		if r.Hash() != want || !name.IsBranch() && !name.IsTag() {
			continue
		}
		spec := config.RefSpec("+" + name.String() + ":" + name.String())
		if err := s.fetch(ctx, op, h.repo.Storer, 1, spec); err != nil {
			return "", err
		}
		if h.has(want) {
			return name, nil
		}
	}
	exact := config.RefSpec(want.String() + ":refs/homeostat/fetched")
	err := s.fetch(ctx, op, h.repo.Storer, 1, exact)
	if err == nil && h.has(want) {
		return "", nil
	}
	var e *Error
	if err != nil && errors.As(err, &e) && e.Kind != nil && !errors.Is(err, ErrRefNotFound) {
		return "", err // network or auth: trying harder will not help
	}
	// Full history of every branch and tag; a shallow repository cannot
	// deepen reliably, so it starts over.
	if shallow, _ := h.repo.Storer.Shallow(); len(shallow) > 0 {
		if err := h.reset(); err != nil {
			return "", err
		}
	}
	if err := s.fetch(ctx, op, h.repo.Storer, 0,
		"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"); err != nil {
		return "", err
	}
	if !h.has(want) {
		return "", newError(op, s.ep, ErrRefNotFound, "commit "+want.String()+" not found in any branch or tag", nil)
	}
	return "", nil
}

// resolveLocal reads a fetched branch or tag, peeling an annotated tag to
// its commit.
func resolveLocal(repo *git.Repository, name plumbing.ReferenceName) (plumbing.Hash, error) {
	r, err := repo.Reference(name, true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read fetched %s: %w", name, err)
	}
	if tag, err := repo.TagObject(r.Hash()); err == nil {
		c, err := tag.Commit()
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("peel tag %s: %w", name, err)
		}
		return c.Hash, nil
	}
	return r.Hash(), nil
}
