package controller

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	"homeostat.dev/homeostat/sync/source"
)

// ReasonVerificationFailed marks a revision whose OpenPGP signature is
// missing or not made by a key spec.verify trusts: it was not applied, and
// the last verified revision stays.
const ReasonVerificationFailed = "VerificationFailed"

// Verifier checks the signatures of a fetched revision. GitSource is one.
type Verifier interface {
	// Verify returns who signed, or an error naming the commit or tag and
	// why it is not trusted.
	Verify(ctx context.Context, s *v1alpha1.Sync, rev Revision) (string, error)
}

// verify is the step between fetch and render: with spec.verify set, a
// revision not signed by a trusted key is neither rendered nor applied.
func (r *Runner) verify(ctx context.Context, s *v1alpha1.Sync, o *Outcome) error {
	if s.Spec.Verify == nil {
		return nil
	}
	v, ok := r.Source.(Verifier)
	if !ok {
		return fmt.Errorf("spec.verify is set but this source cannot verify signatures")
	}
	who, err := v.Verify(ctx, s, o.Revision)
	if err != nil {
		return err
	}
	r.Log.Info("revision verified", "sync", s.Namespace+"/"+s.Name, "revision", o.Revision.Name, "signed", who)
	return nil
}

var _ Verifier = GitSource{}

// Verify implements Verifier: the public keys are every value of the
// Secret spec.verify.secretRef names.
func (g GitSource) Verify(ctx context.Context, s *v1alpha1.Sync, rev Revision) (string, error) {
	var sec corev1.Secret
	key := client.ObjectKey{Namespace: s.Namespace, Name: s.Spec.Verify.SecretRef.Name}
	if err := g.Client.Get(ctx, key, &sec); err != nil {
		return "", fmt.Errorf("verification keys secret %s: %w", key, err)
	}
	names := make([]string, 0, len(sec.Data))
	for k := range sec.Data {
		names = append(names, k)
	}
	sort.Strings(names)
	keys := make([]source.TrustedKey, 0, len(names))
	for _, n := range names {
		keys = append(keys, source.TrustedKey{Name: key.String() + "/" + n, Armored: string(sec.Data[n])})
	}
	var ref source.Ref
	if s.Spec.Ref != nil {
		ref = *s.Spec.Ref
	}
	mode := s.Spec.Verify.Mode
	if mode == "" {
		mode = v1alpha1.VerifyHEAD
	}
	return g.Fetcher.Verify(ctx, s.Namespace+"/"+s.Name, ref, source.Revision{Commit: rev.Commit}, mode, keys)
}
