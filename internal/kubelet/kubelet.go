// Package kubelet plays the kubelet's (and the scheduler's and the Job
// controller's) part for homeostat's own pods in a test cluster that has only
// an API server: it watches the Pods and Jobs labelled
// app.kubernetes.io/managed-by=homeostat, runs their containers' commands as
// local processes, and writes pod and Job status back.
//
// What it maps, so that operator code stays production code:
//   - each PersistentVolumeClaim and emptyDir is a directory under Dir; a
//     container's mount paths in its command, args and env are rewritten to it;
//   - the homeostat image's /homeostat is the Binary built by the test;
//   - every instance (everything mounting the same claim) gets its own
//     127.0.0.1 port: `--port N` is rewritten to it;
//   - each Service gets a TCP proxy on 127.0.0.1 that forwards to a ready pod
//     its selector matches *now* (so relabelling a pod repoints it, as
//     kube-proxy would); `HOST:PORT` and `--host HOST --port PORT` naming a
//     Service or pod are rewritten to the proxy or the pod;
//   - env from secretKeyRef and fieldRef is read from the API; Secret volumes
//     (all keys, or the items named) are files kept in step with the Secret;
//   - with Options.Kubeconfig, an instance's processes act as the pod's
//     ServiceAccount (impersonation), as its mounted token would make them;
//   - each containerPort a pod's container declares gets a loopback port of
//     the pod's own: a listen address ":PORT" in the command is rewritten to
//     it (ports.go);
//   - a readiness probe of type tcpSocket is a dial of the pod's port; one
//     of type exec runs its command (mapped) every periodSeconds, one of
//     type httpGet sends its GET to the declared port's loopback port
//     every periodSeconds (ready on 200-399); for both, a pod turns ready
//     after successThreshold successes in a row and unready after
//     failureThreshold failures in a row, as with a real kubelet;
//   - native sidecars (init containers with restartPolicy Always) start in
//     their turn, are restarted when they exit, and are stopped after the
//     main container, before the pod's phase is final (sidecar.go);
//   - a container of the official postgres image with no command of its own
//     is the machine's PostgreSQL (initdb as the image's entrypoint would,
//     then postgres on localhost at the pod's port, given to the pod's
//     containers as PGPORT: all pods share the machine's network);
//   - downward-API volumes follow the pod's annotations and labels, and a
//     container's termination message path is a file whose content becomes
//     the terminated state's message (podapi.go).
//
// A process that exits makes its pod Failed (or Succeeded); Kill simulates a
// crashed node, Partition a node cut off from the network (see network).
// Deleting a pod stops its process (SIGTERM, then SIGKILL) and completes the
// deletion.
package kubelet

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Kubelet runs homeostat's pods and Jobs as local processes.
type Kubelet struct {
	client client.Client
	opts   Options

	mu      sync.Mutex
	procs   map[string]*proc // "pod/ns/name" or "job/ns/name"
	ports   map[string]int   // claim "ns/name" or "pod/ns/name"
	proxies map[string]*proxy
	// terminating holds the UIDs of deleted pods being stopped, so each is
	// stopped once however many polls see it.
	terminating map[string]bool
	net         network
	// secretVols are the Secret volumes written, by directory, kept in
	// step with their Secrets (secretvol.go).
	secretVols map[string]secretVolume
	cancel     context.CancelFunc
	done       chan struct{}
}

// Options configure a Kubelet.
type Options struct {
	// Binary is the homeostat binary the homeostat image stands for.
	Binary string
	// HomeostatImage is that image's name in the specs.
	HomeostatImage string
	// Dir holds volumes and logs; it must be enterable by the PostgreSQL
	// account (0755).
	Dir string
	// Logf, when set, receives one line per event (process started, exited).
	Logf func(format string, args ...any)
	// Env is added to every process's environment (after os.Environ()).
	Env []string
	// Namespace, when set, limits the kubelet to that namespace's pods and
	// Jobs, so tests sharing an API server leave each other's pods alone.
	Namespace string
	// Kubeconfig, when set, is given to every instance's processes
	// (KUBECONFIG) with the API server behind a proxy of the instance's
	// own, which Partition cuts, impersonating the pod's ServiceAccount
	// (ServiceAccountUser): its user must be allowed to impersonate, and
	// the processes get only what RBAC grants that ServiceAccount. A pod
	// with automountServiceAccountToken: false gets none.
	Kubeconfig string
}

// Start begins watching the API server through c.
func Start(c client.Client, o Options) (*Kubelet, error) {
	if o.Binary == "" || o.Dir == "" {
		return nil, fmt.Errorf("kubelet: Binary and Dir are required")
	}
	for _, d := range []string{o.Dir, filepath.Join(o.Dir, "volumes"), filepath.Join(o.Dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &Kubelet{client: c, opts: o, procs: map[string]*proc{}, ports: map[string]int{}, proxies: map[string]*proxy{},
		terminating: map[string]bool{}, cancel: cancel, done: make(chan struct{})}
	go k.loop(ctx)
	go k.syncSecretVolumes(ctx)
	return k, nil
}

// Stop kills every process, closes the proxies and stops watching.
func (k *Kubelet) Stop() {
	k.cancel()
	<-k.done
	k.mu.Lock()
	procs := make([]*proc, 0, len(k.procs))
	for _, p := range k.procs {
		procs = append(procs, p)
	}
	for _, px := range k.proxies {
		px.close()
	}
	k.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	for _, p := range procs {
		<-p.exited
	}
}

func (k *Kubelet) logf(format string, args ...any) {
	if k.opts.Logf != nil {
		k.opts.Logf("kubelet: "+format, args...)
	}
}

// loop polls the API server: simple and robust, and fast enough for tests.
func (k *Kubelet) loop(ctx context.Context) {
	defer close(k.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		k.syncPods(ctx)
		k.syncJobs(ctx)
		k.releaseClaims(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

var managed = client.MatchingLabels{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}

func (k *Kubelet) syncPods(ctx context.Context) {
	var pods corev1.PodList
	if err := k.client.List(ctx, &pods, managed, client.InNamespace(k.opts.Namespace)); err != nil {
		return
	}
	seen := map[string]bool{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		key := "pod/" + pod.Namespace + "/" + pod.Name
		seen[key] = true
		k.mu.Lock()
		p := k.procs[key]
		k.mu.Unlock()
		switch {
		case p != nil && p.uid != string(pod.UID):
			p.kill() // an older pod of the same name; its exit clears the entry
		case !pod.DeletionTimestamp.IsZero():
			k.mu.Lock()
			started := k.terminating[string(pod.UID)]
			k.terminating[string(pod.UID)] = true
			k.mu.Unlock()
			if !started {
				go k.terminate(ctx, pod, p)
			}
		case p == nil && pod.Status.Phase == "" || p == nil && pod.Status.Phase == corev1.PodPending:
			k.startPod(ctx, pod)
		case p != nil:
			k.refreshDownward(pod)
			k.probe(ctx, pod, p)
		}
	}
	k.reap(seen, "pod/")
}

func (k *Kubelet) syncJobs(ctx context.Context) {
	var jobs batchv1.JobList
	if err := k.client.List(ctx, &jobs, managed, client.InNamespace(k.opts.Namespace)); err != nil {
		return
	}
	seen := map[string]bool{}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		key := "job/" + j.Namespace + "/" + j.Name
		seen[key] = true
		k.mu.Lock()
		p := k.procs[key]
		k.mu.Unlock()
		if p == nil && j.Status.StartTime == nil && j.DeletionTimestamp.IsZero() {
			k.startJob(ctx, j)
		}
		if p != nil && !j.DeletionTimestamp.IsZero() {
			p.kill()
		}
	}
	k.reap(seen, "job/")
}

// reap kills processes whose object is gone from the API.
func (k *Kubelet) reap(seen map[string]bool, prefix string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for key, p := range k.procs {
		if strings.HasPrefix(key, prefix) && !seen[key] {
			p.kill()
		}
	}
}

// releaseClaims removes the pvc-protection finalizer (which the volume
// controller would) from deleted claims no running process uses.
func (k *Kubelet) releaseClaims(ctx context.Context) {
	var pvcs corev1.PersistentVolumeClaimList
	if err := k.client.List(ctx, &pvcs, managed, client.InNamespace(k.opts.Namespace)); err != nil {
		return
	}
	for i := range pvcs.Items {
		c := &pvcs.Items[i]
		if c.DeletionTimestamp.IsZero() || len(c.Finalizers) == 0 || k.claimInUse(c.Namespace+"/"+c.Name) {
			continue
		}
		patch := client.MergeFrom(c.DeepCopy())
		c.Finalizers = nil
		_ = k.client.Patch(ctx, c, patch)
	}
}

func (k *Kubelet) claimInUse(claim string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.procs {
		if p.claim == claim {
			return true
		}
	}
	return false
}

// portFor is the loopback port of an instance: one per claim, so the Job
// that initialises a data directory and the pod that serves it agree.
func (k *Kubelet) portFor(key string) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if p, ok := k.ports[key]; ok {
		return p, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	k.ports[key] = port
	return port, nil
}

// Logs returns the tail of every process log, for a failing test's report.
func (k *Kubelet) Logs(maxPerFile int) string {
	files, _ := filepath.Glob(filepath.Join(k.opts.Dir, "logs", "*.log"))
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if len(data) > maxPerFile {
			data = data[len(data)-maxPerFile:]
		}
		fmt.Fprintf(&b, "==== %s ====\n%s\n", filepath.Base(f), data)
	}
	return b.String()
}
