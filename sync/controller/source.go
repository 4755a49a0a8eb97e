package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	"homeostat.dev/homeostat/sync/source"
)

// GitSource fetches a Sync's repository with git, reading credentials from
// the Secret spec.secretRef names. The cache is keyed by the Sync, so two
// Syncs of one repository never step on each other.
type GitSource struct {
	Fetcher *source.Fetcher
	// Client reads the credentials Secret (an uncached reader, so the
	// controller does not cache every Secret of the cluster).
	Client client.Reader
}

var _ Source = GitSource{}

// Fetch implements Source.
func (g GitSource) Fetch(ctx context.Context, s *v1alpha1.Sync) (Revision, error) {
	var auth source.Auth
	if s.Spec.SecretRef != nil {
		var sec corev1.Secret
		key := client.ObjectKey{Namespace: s.Namespace, Name: s.Spec.SecretRef.Name}
		if err := g.Client.Get(ctx, key, &sec); err != nil {
			return Revision{}, fmt.Errorf("credentials secret %s: %w", key, err)
		}
		var err error
		if auth, err = source.AuthFromSecret(sec.Data); err != nil {
			return Revision{}, fmt.Errorf("credentials secret %s: %w", key, err)
		}
	}
	var ref source.Ref
	if s.Spec.Ref != nil {
		ref = *s.Spec.Ref
	}
	rev, err := g.Fetcher.Fetch(ctx, s.Namespace+"/"+s.Name, s.Spec.URL, ref, auth)
	if err != nil {
		// The commit it tried, when known, goes into the failure's Snapshot.
		if rev.Commit != "" {
			return Revision{Name: rev.String(), Commit: rev.Commit}, err
		}
		return Revision{}, err
	}
	return Revision{Name: rev.String(), Commit: rev.Commit, Message: rev.Message, Author: rev.Author, Dir: rev.Dir}, nil
}
