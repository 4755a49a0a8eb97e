package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"homeostat.dev/homeostat/backup/pgbin"
)

// sidecarGrace is how long a stopping sidecar may take before it is killed,
// the default terminationGracePeriodSeconds.
const sidecarGrace = 30 * time.Second

// isSidecar reports a native sidecar: an init container with restartPolicy
// Always, which Kubernetes starts in its turn among the init containers,
// keeps running (restarting it when it exits) beside the main containers,
// and stops after them.
func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// sidecars are one pod's running sidecars, in start order.
type sidecars struct {
	mu      sync.Mutex
	list    []*sidecar
	stopped bool
}

// sidecar is one sidecar container's current process.
type sidecar struct {
	name     string
	stopWith syscall.Signal // the image's STOPSIGNAL
	mu       sync.Mutex
	cmd      *exec.Cmd
	stopping bool
	done     chan struct{} // closed when the sidecar will not run again
}

// startSidecar starts c and keeps it running until the pod's sidecars stop.
func (k *Kubelet) startSidecar(ctx context.Context, w workload, p *proc, c corev1.Container) error {
	newCmd := func() (*exec.Cmd, io.Closer, error) {
		cmd, out, err := k.command(ctx, w, p, &c)
		if err != nil {
			return nil, nil, err
		}
		return cmd, out, nil
	}
	stopWith := syscall.SIGTERM
	if postgresImage(&c) {
		newCmd = func() (*exec.Cmd, io.Closer, error) { return k.postgresService(ctx, w, p, &c) }
		stopWith = syscall.SIGINT // the postgres image's STOPSIGNAL: a fast shutdown
	}
	s := &sidecar{name: c.Name, stopWith: stopWith, done: make(chan struct{})}
	p.sidecars.mu.Lock()
	if p.sidecars.stopped {
		p.sidecars.mu.Unlock()
		return errors.New("pod is stopping")
	}
	p.sidecars.list = append(p.sidecars.list, s)
	p.sidecars.mu.Unlock()
	cmd, out, err := s.start(newCmd)
	if err != nil {
		close(s.done)
		return err
	}
	k.logf("%s: started sidecar %s (pid %d, port %d)", w.key(), c.Name, cmd.Process.Pid, p.port)
	go k.supervise(ctx, w, s, cmd, out, newCmd)
	return nil
}

// start runs a new process for the sidecar unless it is stopping.
func (s *sidecar) start(newCmd func() (*exec.Cmd, io.Closer, error)) (*exec.Cmd, io.Closer, error) {
	cmd, out, err := newCmd()
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		_ = out.Close()
		return nil, nil, errors.New("stopping")
	}
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return nil, nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	s.cmd = cmd
	return cmd, out, nil
}

// supervise waits for the sidecar's process and restarts it, a second
// later, until the pod's sidecars stop.
func (k *Kubelet) supervise(ctx context.Context, w workload, s *sidecar, cmd *exec.Cmd, out io.Closer, newCmd func() (*exec.Cmd, io.Closer, error)) {
	defer close(s.done)
	for {
		code, _ := waitContainer(cmd)
		_ = out.Close()
		s.mu.Lock()
		stopping := s.stopping
		s.mu.Unlock()
		if stopping || ctx.Err() != nil {
			return
		}
		k.logf("%s: sidecar %s exited %d; restarting", w.key(), s.name, code)
		time.Sleep(time.Second)
		var err error
		if cmd, out, err = s.start(newCmd); err != nil {
			k.logf("%s: sidecar %s: %v", w.key(), s.name, err)
			return
		}
	}
}

// signal sends sig to the sidecar's process group and marks it stopping.
func (s *sidecar) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	if s.cmd != nil && s.cmd.Process != nil {
		if sig == syscall.SIGKILL {
			killTree(s.cmd.Process.Pid, sig)
			return
		}
		_ = syscall.Kill(-s.cmd.Process.Pid, sig)
	}
}

// stop ends the sidecars in reverse start order, as the kubelet does once
// the main containers are done: the stop signal, then SIGKILL after the grace.
func (ss *sidecars) stop() {
	ss.mu.Lock()
	ss.stopped = true
	list := append([]*sidecar(nil), ss.list...)
	ss.list = nil
	ss.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		s := list[i]
		s.signal(s.stopWith)
		select {
		case <-s.done:
		case <-time.After(sidecarGrace):
			s.signal(syscall.SIGKILL)
			<-s.done
		}
	}
}

// kill ends every sidecar at once (a crashed node).
func (ss *sidecars) kill() {
	ss.mu.Lock()
	ss.stopped = true
	list := append([]*sidecar(nil), ss.list...)
	ss.mu.Unlock()
	for _, s := range list {
		s.signal(syscall.SIGKILL)
	}
}

// postgresImage reports a container of the official postgres image that
// relies on the image's entrypoint (no command of its own).
func postgresImage(c *corev1.Container) bool {
	if len(c.Command) > 0 || len(c.Args) > 0 {
		return false
	}
	name := c.Image
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name = name[:i]
	}
	name = strings.TrimPrefix(strings.TrimPrefix(name, "docker.io/"), "library/")
	return name == "postgres"
}

// postgresService stands in for the postgres image's entrypoint with the
// machine's PostgreSQL binaries: initdb on first start (POSTGRES_USER,
// POSTGRES_PASSWORD, POSTGRES_HOST_AUTH_METHOD, as the image reads them),
// then postgres on localhost. A pod's network namespace here is the
// machine's, so the server listens on the pod's own port, not 5432; every
// container of the pod gets it as PGPORT (see podEnv), which psql and libpq
// read.
func (k *Kubelet) postgresService(ctx context.Context, w workload, p *proc, c *corev1.Container) (*exec.Cmd, io.Closer, error) {
	m, err := k.mapper(ctx, w, p)
	if err != nil {
		return nil, nil, err
	}
	env, err := k.env(ctx, w, c, m)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(m.podDir, "postgres-"+c.Name)
	data := filepath.Join(dir, "data")
	logFile, err := os.OpenFile(filepath.Join(k.opts.Dir, "logs", fmt.Sprintf("%s_%s_%s_%s.log", w.kind, w.ns, w.name, c.Name)),
		os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		if err := initPostgres(ctx, dir, data, lookupEnv(env), logFile); err != nil {
			_ = logFile.Close()
			return nil, nil, fmt.Errorf("service %s: %w", c.Name, err)
		}
	}
	// No unix socket: the steps run in another container, which reaches the
	// service over TCP, and the harness's paths are too long for one anyway.
	cmd, err := pgbin.Command(context.Background(), "postgres", "-D", data, "-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=localhost", "-c", "unix_socket_directories=")
	if err != nil {
		_ = logFile.Close()
		return nil, nil, err
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.Stdout, cmd.Stderr = logFile, logFile
	fmt.Fprintf(logFile, "+ %s\n", strings.Join(cmd.Args, " "))
	return cmd, logFile, nil
}

// initPostgres runs initdb as the postgres image's entrypoint would.
func initPostgres(ctx context.Context, dir, data string, env func(string) string, out io.Writer) error {
	user, password, method := env("POSTGRES_USER"), env("POSTGRES_PASSWORD"), env("POSTGRES_HOST_AUTH_METHOD")
	if user == "" {
		user = "postgres"
	}
	if password == "" && method != "trust" {
		return errors.New("the database is uninitialized and POSTGRES_PASSWORD is not set (or POSTGRES_HOST_AUTH_METHOD=trust)")
	}
	if method == "" {
		method = "scram-sha-256"
	}
	if err := pgbin.PrepareDir(dir, 0o755); err != nil {
		return err
	}
	args := []string{"-D", data, "-U", user, "--auth-local=trust", "--auth-host=" + method, "--encoding=UTF8", "--locale=C", "--no-sync"}
	if password != "" {
		pwfile := filepath.Join(dir, "pwfile")
		if err := pgbin.WriteFile(pwfile, []byte(password+"\n")); err != nil {
			return err
		}
		defer func() { _ = os.Remove(pwfile) }()
		args = append(args, "--pwfile="+pwfile)
	}
	cmd, err := pgbin.Command(ctx, "initdb", args...)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	return nil
}

// lookupEnv reads a KEY=VALUE list as the process would: the last wins.
func lookupEnv(env []string) func(string) string {
	return func(name string) string {
		v := ""
		for _, e := range env {
			if k, val, ok := strings.Cut(e, "="); ok && k == name {
				v = val
			}
		}
		return v
	}
}

// podEnv is what the harness adds to every container of a pod: PGPORT when
// a postgres service runs in it, since it cannot listen on 5432.
func podEnv(w workload, p *proc) []string {
	for i := range w.spec.InitContainers {
		if c := &w.spec.InitContainers[i]; isSidecar(c) && postgresImage(c) {
			return []string{"PGPORT=" + strconv.Itoa(p.port)}
		}
	}
	return nil
}
