package ci

import (
	"context"

	"homeostat.dev/homeostat/sync/source"
)

// Git is what the CI controllers need from a git server: the branch heads,
// and a commit's tree (to read its steps file). The sync package's source
// implements it, with the same credentials handling as a Sync.
type Git interface {
	LsRemote(ctx context.Context, url string, auth source.Auth) (map[string]string, error)
	Clone(ctx context.Context, url, commit, dir string, auth source.Auth) error
}

// SourceGit is Git through homeostat.dev/homeostat/sync/source.
type SourceGit struct{}

var _ Git = SourceGit{}

// LsRemote lists branch heads without cloning.
func (SourceGit) LsRemote(ctx context.Context, url string, auth source.Auth) (map[string]string, error) {
	return source.LsRemote(ctx, url, auth)
}

// Clone checks commit out into dir.
func (SourceGit) Clone(ctx context.Context, url, commit, dir string, auth source.Auth) error {
	return source.Clone(ctx, url, commit, dir, auth)
}
