package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// secretVolume is a Secret volume written for a workload: the kubelet keeps
// it in step with its Secret, as a real kubelet's periodic sync does, so a
// renewed certificate reaches a running process.
type secretVolume struct {
	ns  string
	src *corev1.SecretVolumeSource
	// done closes when the workload's process ends: its volume is not
	// refreshed any more.
	done <-chan struct{}
}

// secretSyncEvery is how often mounted Secrets are refreshed (a real
// kubelet takes up to its sync period plus the cache TTL, about a minute).
const secretSyncEvery = time.Second

// writeSecretVolume writes the Secret's keys (or only its items, at their
// paths) into dir, each file replaced by a rename so a reader never sees
// half a file, and remembers dir for syncSecretVolumes.
func (k *Kubelet) writeSecretVolume(ctx context.Context, ns string, src *corev1.SecretVolumeSource, dir string, done <-chan struct{}) error {
	var s corev1.Secret
	if err := k.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: src.SecretName}, &s); err != nil {
		return fmt.Errorf("secret volume %s: %w", src.SecretName, err)
	}
	if err := mkdir(dir); err != nil {
		return err
	}
	files := map[string][]byte{}
	if len(src.Items) == 0 {
		for key, val := range s.Data {
			files[key] = val
		}
	}
	for _, it := range src.Items {
		val, ok := s.Data[it.Key]
		if !ok {
			return fmt.Errorf("secret volume %s: no key %s", src.SecretName, it.Key)
		}
		files[it.Path] = val
	}
	for name, val := range files {
		p := filepath.Join(dir, name)
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, val) {
			continue
		}
		if err := os.WriteFile(p+".new", val, 0o644); err != nil {
			return err
		}
		if err := os.Rename(p+".new", p); err != nil {
			return err
		}
	}
	k.mu.Lock()
	if k.secretVols == nil {
		k.secretVols = map[string]secretVolume{}
	}
	k.secretVols[dir] = secretVolume{ns: ns, src: src, done: done}
	k.mu.Unlock()
	return nil
}

// syncSecretVolumes rewrites every written Secret volume from its Secret
// until ctx ends; a Secret that is gone leaves its files as they are.
func (k *Kubelet) syncSecretVolumes(ctx context.Context) {
	t := time.NewTicker(secretSyncEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k.mu.Lock()
		vols := make(map[string]secretVolume, len(k.secretVols))
		for d, v := range k.secretVols {
			select {
			case <-v.done:
				delete(k.secretVols, d)
			default:
				vols[d] = v
			}
		}
		k.mu.Unlock()
		for dir, v := range vols {
			if err := k.writeSecretVolume(ctx, v.ns, v.src, dir, v.done); err != nil && ctx.Err() == nil {
				k.logf("refresh secret volume %s: %v", dir, err)
			}
		}
	}
}
