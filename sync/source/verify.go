package source

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// Verification modes: what Verify checks.
const (
	VerifyHEAD       = "HEAD"
	VerifyTag        = "Tag"
	VerifyTagAndHEAD = "TagAndHEAD"
)

// ErrNotVerified marks a revision whose signature is missing or not made
// by a trusted key: the caller must not apply it.
var ErrNotVerified = errors.New("revision not verified")

// TrustedKey is one armored OpenPGP public key block, named for messages
// (the Secret key it came from).
type TrustedKey struct {
	Name, Armored string
}

// Verify checks the OpenPGP signatures of a revision Fetch returned for
// key: its commit (VerifyHEAD), the annotated tag ref.Tag names
// (VerifyTag), or both (VerifyTagAndHEAD), against trusted public keys. It
// reads only the fetch cache, never the network. It returns who signed; an
// ErrNotVerified error names the commit or tag and why.
func (f *Fetcher) Verify(ctx context.Context, key string, ref Ref, rev Revision, mode string, keys []TrustedKey) (string, error) {
	if err := checkKeys(keys); err != nil {
		return "", err
	}
	dir, err := keyDir(f.CacheDir, key)
	if err != nil {
		return "", err
	}
	unlock, err := f.lock(ctx, key)
	if err != nil {
		return "", err
	}
	defer unlock()
	c := &cache{gitDir: filepath.Join(dir, "git")}
	st := c.storage()
	defer st.Close()
	repo, err := git.Open(st, nil)
	if err != nil {
		return "", fmt.Errorf("open fetch cache: %w", err)
	}
	var signers []string
	if mode == VerifyTag || mode == VerifyTagAndHEAD {
		who, err := verifyTag(repo, ref, rev, keys)
		if err != nil {
			return "", err
		}
		signers = append(signers, "tag "+ref.Tag+" by "+who)
	}
	if mode == VerifyHEAD || mode == VerifyTagAndHEAD || mode == "" {
		commit, err := repo.CommitObject(plumbing.NewHash(rev.Commit))
		if err != nil {
			return "", fmt.Errorf("read commit %s: %w", rev.Commit, err)
		}
		who, err := verifySigned("commit "+short(rev.Commit), commit.PGPSignature, keys, commit.Verify)
		if err != nil {
			return "", err
		}
		signers = append(signers, "commit "+short(rev.Commit)+" by "+who)
	}
	if len(signers) == 0 {
		return "", fmt.Errorf("unknown mode %q (HEAD, Tag or TagAndHEAD)", mode)
	}
	return strings.Join(signers, ", "), nil
}

// verifyTag checks the annotated tag the Ref names, which must point at
// the revision fetched.
func verifyTag(repo *git.Repository, ref Ref, rev Revision, keys []TrustedKey) (string, error) {
	if ref.Tag == "" {
		return "", fmt.Errorf("%w: verification of a tag needs spec.ref.tag", ErrNotVerified)
	}
	r, err := repo.Reference(plumbing.NewTagReferenceName(ref.Tag), false)
	if err != nil {
		return "", fmt.Errorf("tag %s: %w", ref.Tag, err)
	}
	tag, err := repo.TagObject(r.Hash())
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return "", fmt.Errorf("%w: tag %s is a lightweight tag, which cannot be signed", ErrNotVerified, ref.Tag)
	}
	if err != nil {
		return "", fmt.Errorf("tag %s: %w", ref.Tag, err)
	}
	if tag.TargetType != plumbing.CommitObject || tag.Target.String() != rev.Commit {
		return "", fmt.Errorf("%w: tag %s points at %s, not the commit fetched (%s)", ErrNotVerified, ref.Tag, short(tag.Target.String()), short(rev.Commit))
	}
	return verifySigned("tag "+ref.Tag, tag.PGPSignature, keys, tag.Verify)
}

// verifySigned tries each trusted key on one signature.
func verifySigned(what, signature string, keys []TrustedKey, verify func(string) (*openpgp.Entity, error)) (string, error) {
	if strings.TrimSpace(signature) == "" {
		return "", fmt.Errorf("%w: %s is not signed", ErrNotVerified, what)
	}
	var last error
	for _, k := range keys {
		e, err := verify(k.Armored)
		if err == nil {
			return signerName(e, k.Name), nil
		}
		last = err
	}
	return "", fmt.Errorf("%w: %s is not signed by a trusted key (%w)", ErrNotVerified, what, last)
}

func signerName(e *openpgp.Entity, keyName string) string {
	for name := range e.Identities {
		return fmt.Sprintf("%s (key %s from %q)", name, e.PrimaryKey.KeyIdString(), keyName)
	}
	return fmt.Sprintf("key %s from %q", e.PrimaryKey.KeyIdString(), keyName)
}

// checkKeys refuses a trust list that is empty or holds something other
// than armored public keys, so a typo in the Secret is not read as "no
// signature matches".
func checkKeys(keys []TrustedKey) error {
	if len(keys) == 0 {
		return errors.New("no trusted keys")
	}
	for _, k := range keys {
		if _, err := openpgp.ReadArmoredKeyRing(strings.NewReader(k.Armored)); err != nil {
			return fmt.Errorf("%q is not an armored OpenPGP public key: %w", k.Name, err)
		}
	}
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// tagCurrent reports whether a tag Ref's tag is in the store and points at
// want, so that its tag object is there to verify; a tag whose commit was
// already fetched through a branch is fetched once more for it. Other Refs
// need nothing.
func (c *cache) tagCurrent(ref Ref, want plumbing.Hash) bool {
	if ref.Tag == "" || ref.Commit != "" {
		return true
	}
	h, err := resolveLocal(c.repo, plumbing.NewTagReferenceName(ref.Tag))
	return err == nil && h == want
}
