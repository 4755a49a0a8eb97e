package kubelet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// proc is one pod's or Job's run: its init containers, then its first
// container.
type proc struct {
	key, uid, claim string
	port            int
	mu              sync.Mutex
	cmd             *exec.Cmd
	killed          bool
	exited          chan struct{}
	sidecars        sidecars
	probes          execProbes
}

// kill ends the process tree at once (a crashed node).
func (p *proc) kill() {
	p.sidecars.kill()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killed = true
	if p.cmd != nil && p.cmd.Process != nil {
		killTree(p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// term asks the main process to stop, as the kubelet does on deletion.
func (p *proc) term() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killed = true
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
}

// workload is what a pod and a Job's template have in common.
type workload struct {
	kind, ns, name string
	spec           *corev1.PodSpec
}

func (w workload) key() string { return w.kind + "/" + w.ns + "/" + w.name }

// claimOf is the first volume claim a pod spec mounts.
func claimOf(ns string, spec *corev1.PodSpec) string {
	for _, v := range spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			return ns + "/" + v.PersistentVolumeClaim.ClaimName
		}
	}
	return ""
}

func (k *Kubelet) startPod(ctx context.Context, pod *corev1.Pod) {
	if pod.Spec.NodeName == "" {
		// Bound pods are deleted gracefully, which lets us stop them.
		b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
			Target: corev1.ObjectReference{Kind: "Node", Name: "harness"}}
		if err := k.client.SubResource("binding").Create(ctx, pod, b); err != nil {
			k.logf("bind pod %s/%s: %v", pod.Namespace, pod.Name, err)
			return
		}
	}
	w := workload{kind: "pod", ns: pod.Namespace, name: pod.Name, spec: &pod.Spec}
	p, err := k.prepare(w, string(pod.UID))
	if err != nil {
		k.failPod(ctx, pod, err)
		return
	}
	go k.run(ctx, w, p, func(phase string, code int, msg string) { k.podExited(ctx, pod, phase, code, msg) })
	k.setPodStatus(ctx, pod.Namespace, pod.Name, func(s *corev1.PodStatus) {
		now := metav1.Now()
		s.Phase, s.PodIP, s.HostIP, s.StartTime = corev1.PodRunning, "127.0.0.1", "127.0.0.1", &now
		s.PodIPs, s.HostIPs = []corev1.PodIP{{IP: "127.0.0.1"}}, []corev1.HostIP{{IP: "127.0.0.1"}}
		s.Conditions = podConditions(false)
		s.ContainerStatuses = []corev1.ContainerStatus{{
			Name: pod.Spec.Containers[0].Name, Image: pod.Spec.Containers[0].Image, Started: ptrBool(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		}}
	})
}

func (k *Kubelet) startJob(ctx context.Context, j *batchv1.Job) {
	w := workload{kind: "job", ns: j.Namespace, name: j.Name, spec: &j.Spec.Template.Spec}
	p, err := k.prepare(w, string(j.UID))
	if err != nil {
		k.logf("job %s/%s: %v", j.Namespace, j.Name, err)
		k.jobExited(ctx, j, corev1.PodFailed, err.Error())
		return
	}
	now := metav1.Now()
	k.setJobStatus(ctx, j, func(s *batchv1.JobStatus) { s.StartTime, s.Active = &now, 1 })
	go k.run(ctx, w, p, func(phase string, _ int, msg string) { k.jobExited(ctx, j, corev1.PodPhase(phase), msg) })
}

// prepare registers the run and gives it its port.
func (k *Kubelet) prepare(w workload, uid string) (*proc, error) {
	if len(w.spec.Containers) == 0 {
		return nil, errors.New("no containers")
	}
	claim := claimOf(w.ns, w.spec)
	portKey := claim
	if portKey == "" {
		portKey = w.key()
	}
	port, err := k.portFor(portKey)
	if err != nil {
		return nil, err
	}
	p := &proc{key: w.key(), uid: uid, claim: claim, port: port, exited: make(chan struct{})}
	k.mu.Lock()
	k.procs[p.key] = p
	k.mu.Unlock()
	return p, nil
}

// run executes the init containers, then the main container, and reports
// how it ended.
func (k *Kubelet) run(ctx context.Context, w workload, p *proc, done func(phase string, code int, msg string)) {
	defer func() {
		k.mu.Lock()
		if k.procs[p.key] == p {
			delete(k.procs, p.key)
		}
		k.mu.Unlock()
		close(p.exited)
	}()
	containers := append(append([]corev1.Container(nil), w.spec.InitContainers...), w.spec.Containers[0])
	// Native sidecars run beside the rest and stop after the main
	// container, before the pod's phase is final (sidecar.go).
	defer p.sidecars.stop()
	for i, c := range containers {
		var code int
		var err error
		if isSidecar(&c) {
			err = k.startSidecar(ctx, w, p, c)
		} else {
			code, err = k.runContainer(ctx, w, p, &c)
		}
		if err != nil || code != 0 {
			msg := fmt.Sprintf("container %s exited %d", c.Name, code)
			if err != nil {
				msg = fmt.Sprintf("container %s: %v", c.Name, err)
			}
			k.logf("%s: %s", w.key(), msg)
			p.sidecars.stop()
			done(string(corev1.PodFailed), code, msg)
			return
		}
		if i == len(containers)-1 {
			p.sidecars.stop()
			k.logf("%s: completed", w.key())
			done(string(corev1.PodSucceeded), 0, "")
		}
	}
}

func (k *Kubelet) runContainer(ctx context.Context, w workload, p *proc, c *corev1.Container) (int, error) {
	cmd, logFile, err := k.command(ctx, w, p, c)
	if err != nil {
		return -1, err
	}
	defer logFile.Close()
	p.mu.Lock()
	if p.killed {
		p.mu.Unlock()
		return -1, errors.New("killed")
	}
	p.cmd = cmd
	err = cmd.Start()
	p.mu.Unlock()
	if err != nil {
		return -1, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	k.logf("%s: started %s (pid %d, port %d)", w.key(), c.Name, cmd.Process.Pid, p.port)
	return waitContainer(cmd)
}

// command prepares a container's process, its output appended to the
// container's log file (which the caller closes).
func (k *Kubelet) command(ctx context.Context, w workload, p *proc, c *corev1.Container) (*exec.Cmd, *os.File, error) {
	m, err := k.mapper(ctx, w, p)
	if err != nil {
		return nil, nil, err
	}
	argv, err := m.argv(c)
	if err != nil {
		return nil, nil, err
	}
	env, err := k.env(ctx, w, c, m)
	if err != nil {
		return nil, nil, err
	}
	_ = os.Remove(terminationFile(m.podDir, c.Name))
	logPath := filepath.Join(k.opts.Dir, "logs", fmt.Sprintf("%s_%s_%s_%s.log", w.kind, w.ns, w.name, c.Name))
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(logFile, "+ %s\n", strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr, cmd.Dir = env, logFile, logFile, m.podDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, logFile, nil
}

// waitContainer waits for a started container process and returns its exit
// code (128+signal when killed).
func waitContainer(cmd *exec.Cmd) (int, error) {
	err := cmd.Wait()
	// A supervisor may leave children behind; a container's end ends them.
	killTree(cmd.Process.Pid, syscall.SIGKILL)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}

// env is the process environment: the test's, then the container's.
func (k *Kubelet) env(ctx context.Context, w workload, c *corev1.Container, m *mapper) ([]string, error) {
	env := append(append(append([]string(nil), os.Environ()...), k.opts.Env...), podEnv(w, m.p)...)
	if kc, err := k.kubeconfigEnv(w, m.p); err != nil {
		return nil, err
	} else if kc != "" {
		env = append(env, kc)
	}
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			var s corev1.Secret
			if err := k.client.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: ref.Name}, &s); err != nil {
				return nil, fmt.Errorf("env %s: secret %s: %w", e.Name, ref.Name, err)
			}
			b, ok := s.Data[ref.Key]
			if !ok {
				return nil, fmt.Errorf("env %s: secret %s has no key %s", e.Name, ref.Name, ref.Key)
			}
			v = string(b)
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				v = w.name
			case "metadata.namespace":
				v = w.ns
			case "status.podIP":
				v = "127.0.0.1"
			}
		default:
			v = m.path(v)
		}
		env = append(env, e.Name+"="+v)
	}
	return env, nil
}

// probe runs the main container's readiness probe (tcpSocket, exec or
// httpGet) and records a change.
func (k *Kubelet) probe(ctx context.Context, pod *corev1.Pod, p *proc) {
	if pod.Status.Phase != corev1.PodRunning {
		return
	}
	ready := true
	if rp := pod.Spec.Containers[0].ReadinessProbe; rp != nil && rp.TCPSocket != nil {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p.port), time.Second)
		ready = err == nil
		if conn != nil {
			conn.Close()
		}
	} else if rp != nil && rp.Exec != nil {
		ready = k.execReady(ctx, pod, p, rp)
	} else if rp != nil && rp.HTTPGet != nil {
		ready = k.httpReady(ctx, pod, p, rp)
	}
	if podIsReady(pod) == ready {
		return
	}
	k.setPodStatus(ctx, pod.Namespace, pod.Name, func(s *corev1.PodStatus) {
		if s.Phase != corev1.PodRunning {
			return
		}
		s.Conditions = podConditions(ready)
		for i := range s.ContainerStatuses {
			s.ContainerStatuses[i].Ready = ready
		}
	})
}

func podIsReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podConditions(ready bool) []corev1.PodCondition {
	now := metav1.Now()
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: st, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: st, LastTransitionTime: now},
	}
}

func ptrBool(b bool) *bool { return &b }

// terminate stops a deleted pod's process and completes the deletion.
func (k *Kubelet) terminate(ctx context.Context, pod *corev1.Pod, p *proc) {
	if p != nil {
		p.term()
		grace := 20 * time.Second
		if g := pod.DeletionGracePeriodSeconds; g != nil && time.Duration(*g)*time.Second < grace {
			grace = time.Duration(*g) * time.Second
		}
		select {
		case <-p.exited:
		case <-time.After(grace):
			p.kill()
			<-p.exited
		}
	}
	err := k.client.Delete(ctx, pod, client.GracePeriodSeconds(0), client.Preconditions{UID: &pod.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		k.logf("delete pod %s/%s: %v", pod.Namespace, pod.Name, err)
		// Let the next poll try again.
		k.mu.Lock()
		delete(k.terminating, string(pod.UID))
		k.mu.Unlock()
	}
}

// Kill ends a pod's processes at once, as a crashed node would: the pod
// turns Failed.
func (k *Kubelet) Kill(namespace, pod string) error {
	k.mu.Lock()
	p := k.procs["pod/"+namespace+"/"+pod]
	k.mu.Unlock()
	if p == nil {
		return fmt.Errorf("kill %s/%s: no process", namespace, pod)
	}
	p.kill()
	<-p.exited
	return nil
}

func (k *Kubelet) podExited(ctx context.Context, pod *corev1.Pod, phase string, code int, msg string) {
	k.setPodStatus(ctx, pod.Namespace, pod.Name, func(s *corev1.PodStatus) {
		if s.Phase == corev1.PodFailed || s.Phase == corev1.PodSucceeded {
			return
		}
		s.Phase, s.Message, s.Conditions = corev1.PodPhase(phase), msg, podConditions(false)
		for i := range s.ContainerStatuses {
			m := msg
			if tm := k.terminationMessage(pod, s.ContainerStatuses[i].Name); tm != "" {
				m = tm
			}
			s.ContainerStatuses[i].Ready = false
			s.ContainerStatuses[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: int32(code), Message: m, FinishedAt: metav1.Now(),
			}}
		}
	})
}

func (k *Kubelet) failPod(ctx context.Context, pod *corev1.Pod, err error) {
	k.logf("pod %s/%s: %v", pod.Namespace, pod.Name, err)
	k.setPodStatus(ctx, pod.Namespace, pod.Name, func(s *corev1.PodStatus) {
		s.Phase, s.Message = corev1.PodFailed, err.Error()
	})
}

func (k *Kubelet) setPodStatus(ctx context.Context, ns, name string, mutate func(*corev1.PodStatus)) {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var pod corev1.Pod
		if err := k.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil {
			return err
		}
		mutate(&pod.Status)
		return k.client.Status().Update(ctx, &pod)
	})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		k.logf("update status of pod %s/%s: %v", ns, name, err)
	}
}

func (k *Kubelet) jobExited(ctx context.Context, j *batchv1.Job, phase corev1.PodPhase, msg string) {
	k.setJobStatus(ctx, j, func(s *batchv1.JobStatus) {
		now := metav1.Now()
		if s.StartTime == nil {
			s.StartTime = &now
		}
		s.Active = 0
		if phase == corev1.PodSucceeded {
			s.Succeeded, s.CompletionTime = 1, &now
			s.Conditions = []batchv1.JobCondition{
				{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastProbeTime: now, LastTransitionTime: now},
				{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastProbeTime: now, LastTransitionTime: now},
			}
			return
		}
		s.Failed = 1
		s.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: msg, LastProbeTime: now, LastTransitionTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: msg, LastProbeTime: now, LastTransitionTime: now},
		}
	})
}

func (k *Kubelet) setJobStatus(ctx context.Context, j *batchv1.Job, mutate func(*batchv1.JobStatus)) {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var cur batchv1.Job
		if err := k.client.Get(ctx, client.ObjectKeyFromObject(j), &cur); err != nil {
			return err
		}
		if cur.UID != j.UID {
			return nil
		}
		mutate(&cur.Status)
		return k.client.Status().Update(ctx, &cur)
	})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		k.logf("update status of job %s/%s: %v", j.Namespace, j.Name, err)
	}
}

// killTree signals a process and all its descendants (found through /proc),
// children first collected so none is reparented away in between.
func killTree(pid int, sig syscall.Signal) {
	pids := []int{pid}
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name may contain spaces; fields after ") " are fixed.
		s := string(data)
		rest := s[strings.LastIndexByte(s, ')')+2:]
		f := strings.Fields(rest)
		if len(f) > 1 {
			if pp, err := strconv.Atoi(f[1]); err == nil {
				children[pp] = append(children[pp], n)
			}
		}
	}
	for i := 0; i < len(pids); i++ {
		pids = append(pids, children[pids[i]]...)
	}
	_ = syscall.Kill(-pid, sig)
	for _, p := range pids {
		_ = syscall.Kill(p, sig)
	}
}
