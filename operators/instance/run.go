package instance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"homeostat.dev/homeostat/backup/pgbin"
)

// RunOptions configure Run.
type RunOptions struct {
	PGData string
	// Grace is how long a fast shutdown may take after SIGTERM before
	// homeostat asks for an immediate one (30 s by default; keep it below the
	// pod's terminationGracePeriodSeconds).
	Grace time.Duration
	// Superuser ("postgres" when empty) connects over the unix socket to
	// set the passwords of Superuser, ReplicationUser and Owner once the
	// server is a primary (see syncPasswords); an empty password leaves that
	// role alone.
	Superuser, ReplicationUser, Owner                     string
	SuperuserPassword, ReplicationPassword, OwnerPassword string
	// PassFile is a replica's replication passfile (DefaultPassFile when
	// empty), refreshed with ReplicationPassword before postgres starts.
	PassFile string
	// Membership lets the instance follow the primary the operator chose
	// (see followPrimary); its zero value leaves the role as it is.
	Membership Membership
	// TLS is the mounted server certificate: installed and required for
	// network logins before postgres starts, and reloaded when it changes
	// (checked every TLSPoll, 5 s when 0). Nil leaves TLS as the data
	// directory has it.
	TLS     *TLS
	TLSPoll time.Duration
	// Health is the readiness endpoint (see judge); its zero value serves
	// none.
	Health HealthOptions
	Log    *slog.Logger
	// TerminationLog is where a refusal to start is written for the
	// kubelet's termination message (the operator reads it into status);
	// empty writes none.
	TerminationLog string
}

// Run supervises postgres in the foreground, as a pod's main process: its
// output goes to ours, SIGTERM or SIGINT asks for a fast shutdown (SIGINT to
// postgres) and, after Grace, an immediate one (SIGQUIT); SIGHUP is passed on
// (reload). Run returns postgres's exit code when postgres ends for any
// reason (128+signal when it was killed), so the pod restarts when it dies.
// Beside the server it sets the roles' passwords once it is a primary, and
// keeps DiskUsageFile current.
func Run(opts RunOptions) (int, error) {
	log := logger(opts.Log)
	if opts.Grace <= 0 {
		opts.Grace = 30 * time.Second
	}
	if opts.Superuser == "" {
		opts.Superuser = "postgres"
	}
	if ok, err := hasCluster(opts.PGData); err != nil {
		return 1, fmt.Errorf("instance run: %w", err)
	} else if !ok {
		return 1, fmt.Errorf("instance run: %s holds no cluster (run instance init or join first)", opts.PGData)
	}
	if code, err := refuseOtherMajor(opts, log); err != nil {
		return code, fmt.Errorf("instance run: %w", err)
	}
	if opts.PassFile == "" {
		opts.PassFile = DefaultPassFile(opts.PGData)
	}
	if changed, err := refreshPassFile(opts.PassFile, opts.ReplicationPassword); err != nil {
		log.Warn("could not refresh the replication passfile; streaming keeps the old password", "passfile", opts.PassFile, "err", err)
	} else if changed {
		log.Info("replication passfile refreshed from the secret", "passfile", opts.PassFile)
	}
	if err := startTLS(&opts, log); err != nil {
		return 1, fmt.Errorf("instance run: %w", err)
	}
	if err := followPrimary(context.Background(), opts, log); err != nil {
		if errors.Is(err, errRewind) {
			log.Error("cannot rewind this former primary; it must be cloned again", "err", err)
			return ExitRewindFailed, fmt.Errorf("instance run: %w", err)
		}
		return 1, fmt.Errorf("instance run: %w", err)
	}
	// Not tied to a context: only our signal handling stops postgres.
	cmd, err := pgbin.Command(context.Background(), "postgres", "-D", opts.PGData)
	if err != nil {
		return 1, err
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// Own process group: a terminal's Ctrl-C reaches only us, and we decide.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("instance run: start postgres: %w", err)
	}
	log.Info("postgres started", "pid", cmd.Process.Pid, "pgdata", opts.PGData)
	stopHealth, err := serveHealth(opts, log)
	if err != nil {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		return 1, fmt.Errorf("instance run: %w", err)
	}
	defer stopHealth()
	stopPasswordSync := startPasswordSync(opts, log)
	defer stopPasswordSync()
	fence := make(chan string, 1)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go watchIsolation(watchCtx, opts, log, fence)
	go reportDiskUsage(watchCtx, opts.PGData, log)
	go watchTLS(watchCtx, opts, opts.tlsPoll(), func() { _ = cmd.Process.Signal(syscall.SIGHUP) }, log)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var immediate <-chan time.Time
	fenced := false
	for {
		select {
		case err := <-exited:
			code := exitCode(cmd, err)
			log.Info("postgres exited", "code", code)
			if fenced {
				return ExitFenced, nil
			}
			return code, nil
		case reason := <-fence:
			// Immediate: stop taking writes now, and leave the WAL since
			// the last checkpoint for pg_rewind (a shutdown checkpoint
			// would let it go).
			log.Warn("fencing this primary: immediate shutdown", "reason", reason)
			fenced = true
			_ = cmd.Process.Signal(syscall.SIGQUIT)
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				_ = cmd.Process.Signal(syscall.SIGHUP)
				continue
			}
			if immediate == nil {
				log.Info("fast shutdown requested", "signal", sig.String(), "grace", opts.Grace)
				_ = cmd.Process.Signal(syscall.SIGINT)
				immediate = time.After(opts.Grace)
			}
		case <-immediate:
			log.Warn("fast shutdown did not finish within the grace period; immediate shutdown", "grace", opts.Grace)
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			immediate = nil
		}
	}
}

func (o RunOptions) tlsPoll() time.Duration {
	if o.TLSPoll > 0 {
		return o.TLSPoll
	}
	return 5 * time.Second
}

func exitCode(cmd *exec.Cmd, err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return 1
	}
	return cmd.ProcessState.ExitCode()
}
