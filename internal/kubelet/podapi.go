package kubelet

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// This file holds the parts of a pod's contract with its kubelet that build
// pods rely on: downward-API volumes (kept up to date as annotations change),
// termination messages, and exec readiness probes.

// downwardDir is where a downward-API volume of a workload lives.
func (k *Kubelet) downwardDir(w workload, volume string) string {
	return filepath.Join(k.opts.Dir, "volumes", "downward", w.kind+"_"+w.ns+"_"+w.name+"_"+volume)
}

// writeDownwardVolume fills a downward-API volume from the pod's metadata as
// the API server has it now.
func (m *mapper) writeDownwardVolume(v *corev1.Volume) (string, error) {
	d := m.k.downwardDir(m.w, v.Name)
	if err := mkdir(d); err != nil {
		return "", err
	}
	var pod corev1.Pod
	if m.w.kind == "pod" {
		if err := m.k.client.Get(m.ctx, client.ObjectKey{Namespace: m.w.ns, Name: m.w.name}, &pod); err != nil {
			return "", err
		}
	}
	return d, writeDownward(&pod, v.DownwardAPI, d)
}

// refreshDownward rewrites a running pod's downward-API volumes, as the
// kubelet does when annotations or labels change.
func (k *Kubelet) refreshDownward(pod *corev1.Pod) {
	w := workload{kind: "pod", ns: pod.Namespace, name: pod.Name}
	for i := range pod.Spec.Volumes {
		if v := &pod.Spec.Volumes[i]; v.DownwardAPI != nil {
			d := k.downwardDir(w, v.Name)
			if _, err := os.Stat(d); err == nil {
				_ = writeDownward(pod, v.DownwardAPI, d)
			}
		}
	}
}

var mapKey = regexp.MustCompile(`^metadata\.(annotations|labels)\['([^']+)'\]$`)

// writeDownward writes each item's field into its file, replacing files
// whole so that a reader never sees half a value.
func writeDownward(pod *corev1.Pod, src *corev1.DownwardAPIVolumeSource, dir string) error {
	for _, it := range src.Items {
		if it.FieldRef == nil {
			continue
		}
		val := fieldValue(pod, it.FieldRef.FieldPath)
		p := filepath.Join(dir, it.Path)
		if old, err := os.ReadFile(p); err == nil && string(old) == val {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, []byte(val), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
	}
	return nil
}

func fieldValue(pod *corev1.Pod, path string) string {
	if g := mapKey.FindStringSubmatch(path); g != nil {
		if g[1] == "annotations" {
			return pod.Annotations[g[2]]
		}
		return pod.Labels[g[2]]
	}
	switch path {
	case "metadata.name":
		return pod.Name
	case "metadata.namespace":
		return pod.Namespace
	case "metadata.uid":
		return string(pod.UID)
	}
	return ""
}

// terminationMount maps the container's termination message path to a file
// of its own (command empties it as the container starts).
func (m *mapper) terminationMount(c *corev1.Container) mount {
	path := c.TerminationMessagePath
	if path == "" {
		path = corev1.TerminationMessagePathDefault
	}
	return mount{path: path, dir: terminationFile(m.podDir, c.Name)}
}

func terminationFile(podDir, container string) string {
	return filepath.Join(podDir, "termination-"+container)
}

// terminationMessage is what a pod's container wrote to its termination
// message path, cut to the kubelet's 4096 bytes.
func (k *Kubelet) terminationMessage(pod *corev1.Pod, container string) string {
	podDir := filepath.Join(k.opts.Dir, "volumes", "pods", "pod_"+pod.Namespace+"_"+pod.Name)
	b, err := os.ReadFile(terminationFile(podDir, container))
	if err != nil {
		return ""
	}
	if len(b) > 4096 {
		b = b[:4096]
	}
	return string(b)
}

// execProbes runs a pod's exec or httpGet readiness probe in the background, every
// periodSeconds, so that a slow command never holds up the sync loop.
type execProbes struct {
	mu      sync.Mutex
	last    time.Time
	ready   bool
	running bool
	// fails and successes count consecutive results, for the probe's
	// failureThreshold and successThreshold.
	fails, successes int32
}

// record counts one result as the kubelet does: not ready until
// successThreshold successes in a row (1 by default), and a ready pod
// stays ready until failureThreshold failures in a row (3 by default).
func (ep *execProbes) record(ok bool, rp *corev1.Probe) {
	if ok {
		ep.fails, ep.successes = 0, ep.successes+1
		if ep.successes >= max(rp.SuccessThreshold, 1) {
			ep.ready = true
		}
		return
	}
	threshold := rp.FailureThreshold
	if threshold <= 0 {
		threshold = 3
	}
	ep.fails, ep.successes = ep.fails+1, 0
	if ep.fails >= threshold {
		ep.ready = false
	}
}

// execReady returns the latest result of the main container's exec probe
// and starts the next run when one is due.
func (k *Kubelet) execReady(ctx context.Context, pod *corev1.Pod, p *proc, rp *corev1.Probe) bool {
	return k.asyncProbe(p, rp, func() bool { return k.runExecProbe(ctx, pod, p, rp) })
}

// asyncProbe returns the latest result of run and starts it again in the
// background when periodSeconds have passed since the last start.
func (k *Kubelet) asyncProbe(p *proc, rp *corev1.Probe, run func() bool) bool {
	period := time.Duration(rp.PeriodSeconds) * time.Second
	if period <= 0 {
		period = 10 * time.Second
	}
	ep := &p.probes
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if !ep.running && time.Since(ep.last) >= period {
		ep.running, ep.last = true, time.Now()
		go func() {
			ok := run()
			ep.mu.Lock()
			ep.record(ok, rp)
			ep.running = false
			ep.mu.Unlock()
		}()
	}
	return ep.ready
}

func (k *Kubelet) runExecProbe(ctx context.Context, pod *corev1.Pod, p *proc, rp *corev1.Probe) bool {
	w := workload{kind: "pod", ns: pod.Namespace, name: pod.Name, spec: &pod.Spec}
	m, err := k.mapper(ctx, w, p)
	if err != nil {
		return false
	}
	c := pod.Spec.Containers[0]
	c.Command, c.Args = rp.Exec.Command, nil
	argv, err := m.argv(&c)
	if err != nil {
		return false
	}
	env, err := k.env(ctx, w, &c, m)
	if err != nil {
		return false
	}
	// The probe's own timeout (1s by default) is too tight for a loaded test
	// machine; a probe that hangs is still a failure.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = env, m.podDir
	return cmd.Run() == nil
}
