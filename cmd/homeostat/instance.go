package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/operators/instance"
)

func init() { register(newInstanceCommand) }

// Password sources: a file flag, else this environment variable.
const (
	envSuperuserPassword   = "HOMEOSTAT_SUPERUSER_PASSWORD"
	envReplicationPassword = "HOMEOSTAT_REPLICATION_PASSWORD"
	envAppPassword         = "HOMEOSTAT_APP_PASSWORD"
)

func newInstanceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "instance",
		Short: "The PostgreSQL instance manager a PostgreSQL pod runs",
		PersistentPreRun: func(*cobra.Command, []string) {
			setupLogging()
		},
	}
	cmd.AddCommand(newInstanceInitCommand(), newInstanceJoinCommand(), newInstanceRunCommand(),
		newInstancePromoteCommand(), newInstanceRejoinCommand(), newInstanceStatusCommand(), newInstanceSyncStandbysCommand())
	return cmd
}

// instanceFlags are the settings init and join share.
type instanceFlags struct {
	pgdata, socketDir, listen, superuser, replUser, replPasswordFile, homeostat string
	port                                                                        int
	parameters                                                                  []string
	s3                                                                          s3Flags
	tls                                                                         tlsFlags
}

func (f *instanceFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.pgdata, "pgdata", os.Getenv("PGDATA"), "data directory (env PGDATA)")
	fs.IntVar(&f.port, "port", 5432, "port")
	fs.StringVar(&f.socketDir, "socket-dir", "/var/run/postgresql", "unix socket directory")
	fs.StringVar(&f.listen, "listen-addresses", "*", "listen_addresses")
	fs.StringVar(&f.superuser, "superuser", "postgres", "superuser role (trusted on the unix socket only)")
	fs.StringVar(&f.replUser, "replication-user", "streaming_replica", "role replicas and backups connect as")
	fs.StringVar(&f.replPasswordFile, "replication-password-file", "", "file holding the replication role's password (else env "+envReplicationPassword+")")
	fs.StringArrayVar(&f.parameters, "parameter", nil, "postgresql.conf setting name=value, merged over homeostat's (repeatable)")
	homeostatFlag(fs, &f.homeostat)
	f.s3.bind(fs)
	f.tls.bind(fs, false)
}

// config builds the instance configuration; a configured backup store turns
// on WAL archiving with `homeostat backup wal-push`.
func (f *instanceFlags) config(fs *pflag.FlagSet) (instance.Config, error) {
	if f.pgdata == "" {
		return instance.Config{}, usageError{errors.New("--pgdata (or PGDATA) is required")}
	}
	params, err := instance.ParseParameters(f.parameters)
	if err != nil {
		return instance.Config{}, usageError{err}
	}
	c := instance.Config{Port: f.port, ListenAddresses: f.listen, SocketDir: f.socketDir, Superuser: f.superuser,
		ReplicationUser: f.replUser, Parameters: params}
	if err := f.tls.check(); err != nil {
		return c, err
	}
	f.tls.configure(&c, f.pgdata)
	s3, err := f.s3.config(fs)
	if err != nil {
		return c, err
	}
	if s3.Enabled() {
		bin, err := homeostatPath(f.homeostat)
		if err != nil {
			return c, err
		}
		c.ArchiveCommand = backup.ArchiveCommand(bin, s3)
		c.RestoreCommand = backup.RestoreCommand(bin, s3)
	}
	return c, nil
}

func newInstanceInitCommand() *cobra.Command {
	var f instanceFlags
	var opts instance.InitOptions
	var superPasswordFile, appPasswordFile string
	cmd := &cobra.Command{
		Use:   "init --pgdata DIR",
		Short: "Create a primary: initdb, configuration, roles and the app database (only reconfigures an existing directory)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.config(cmd.Flags())
			if err != nil {
				return err
			}
			opts.PGData, opts.Config = f.pgdata, c
			pw := passwordFiles{super: superPasswordFile, repl: f.replPasswordFile, app: appPasswordFile}
			if opts.SuperuserPassword, opts.ReplicationPassword, opts.OwnerPassword, err = pw.read(); err != nil {
				return err
			}
			return instance.Init(cmd.Context(), opts)
		},
	}
	f.bind(cmd.Flags())
	cmd.Flags().StringVar(&opts.Database, "database", "app", "application database to create")
	cmd.Flags().StringVar(&opts.Owner, "owner", "app", "application role that owns the database")
	cmd.Flags().StringVar(&superPasswordFile, "superuser-password-file", "", "file holding the superuser's password (else env "+envSuperuserPassword+"; none: socket login only)")
	cmd.Flags().StringVar(&appPasswordFile, "app-password-file", "", "file holding the application role's password (else env "+envAppPassword+")")
	return cmd
}

func newInstanceJoinCommand() *cobra.Command {
	var f instanceFlags
	var primary, name, passfile string
	cmd := &cobra.Command{
		Use:   "join --pgdata DIR --primary HOST:PORT --name NAME",
		Short: "Create a streaming replica of a primary (only reconfigures an existing directory)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.config(cmd.Flags())
			if err != nil {
				return err
			}
			host, portText, err := net.SplitHostPort(primary)
			if err != nil {
				return usageError{fmt.Errorf("--primary %q: want HOST:PORT: %w", primary, err)}
			}
			port, err := strconv.Atoi(portText)
			if err != nil {
				return usageError{fmt.Errorf("--primary %q: port: %w", primary, err)}
			}
			if name == "" {
				return usageError{errors.New("--name is required (the replication slot and application name)")}
			}
			password, err := instance.ReadSecret(f.replPasswordFile, envReplicationPassword)
			if err != nil {
				return err
			}
			slot := instance.SlotName(name)
			c.Primary = &instance.Upstream{Host: host, Port: port, User: f.replUser, PassFile: passfile, Slot: slot, ApplicationName: slot}
			if passfile == "" {
				c.Primary.PassFile = instance.DefaultPassFile(f.pgdata)
			}
			f.tls.configure(&c, f.pgdata)
			return instance.Join(cmd.Context(), instance.JoinOptions{PGData: f.pgdata, Config: c, ReplicationPassword: password})
		},
	}
	f.bind(cmd.Flags())
	cmd.Flags().StringVar(&primary, "primary", "", "the primary's HOST:PORT")
	cmd.Flags().StringVar(&name, "name", os.Getenv("HOSTNAME"), "instance name: replication slot and application_name, lowercased with - turned into _ (default: $HOSTNAME)")
	cmd.Flags().StringVar(&passfile, "passfile", "", "where to keep the replication password (default: .<pgdata name>.pgpass beside the data directory)")
	return cmd
}

func newInstanceRunCommand() *cobra.Command {
	var opts instance.RunOptions
	var pw passwordFiles
	var member memberFlags
	var tf tlsFlags
	var maxLag string
	cmd := &cobra.Command{
		Use:   "run --pgdata DIR",
		Short: "Run postgres in the foreground: SIGTERM means fast shutdown, then immediate after --grace; exits with postgres's code",
		Long: `Run postgres in the foreground: SIGTERM means fast shutdown, then immediate after --grace; exits with postgres's code.

Once the server is a primary (at once, or when a restore's recovery or a
failover promotes it), run sets the passwords of the superuser, the
replication role and --owner (created WITH LOGIN when missing) from the
password files or environment variables, as init does: the secrets are the
source of truth, also for a directory restored from another cluster. A
password that is not given leaves its role alone. On a replica, the
replication password in the passfile instance join wrote is refreshed before
postgres starts, so a rotated secret reaches it with a restart.

With --cluster, run asks the API server which instance the operator chose
as primary before postgres starts: a replica is pointed at --primary (the
-rw Service) through its own slot; a former primary that is not the chosen
one any more is rewound with pg_rewind from the new primary and rejoins as
its standby (exit code 3 when the rewind fails: the operator clones it
again).

With --tls-dir (the mounted server Secret), run installs the certificate
beside the data directory, turns ssl on, rewrites pg_hba.conf so network
logins without TLS are rejected, points a replica at its primary with
sslmode=verify-full, and checks the directory every --tls-poll: a renewed
certificate is installed and postgres reloaded (SIGHUP), no restart.

With --health-addr, run serves GET /readyz for the pod's readiness probe:
200 for a primary that accepts writes (and that the operator has not
deposed), or for a replica whose WAL receiver streams from --primary with a
replay lag of at most --max-lag; 503 otherwise, the reason in the body.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.PGData == "" {
				return usageError{errors.New("--pgdata (or PGDATA) is required")}
			}
			var err error
			if opts.SuperuserPassword, opts.ReplicationPassword, opts.OwnerPassword, err = pw.read(); err != nil {
				return err
			}
			if opts.Membership, err = member.membership(opts.ReplicationUser, opts.PassFile); err != nil {
				return err
			}
			if err := tf.check(); err != nil {
				return err
			}
			opts.TLS, opts.TLSPoll = tf.tls(opts.PGData), tf.poll
			opts.Membership.Upstream.SSLRootCert = tf.upstreamCA(opts.TLS)
			if opts.Health.MaxLag, err = parseMaxLag(maxLag); err != nil {
				return err
			}
			code, err := instance.Run(opts)
			if err != nil || code != 0 {
				return withCode(max(code, 1), err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.PGData, "pgdata", os.Getenv("PGDATA"), "data directory (env PGDATA)")
	cmd.Flags().DurationVar(&opts.Grace, "grace", 30*time.Second, "how long a fast shutdown may take before an immediate one")
	cmd.Flags().StringVar(&opts.TerminationLog, "termination-log", "", "where to write why postgres was not started (the pod's termination message path)")
	cmd.Flags().StringVar(&opts.Superuser, "superuser", "postgres", "superuser role (connects over the unix socket to set passwords)")
	cmd.Flags().StringVar(&opts.ReplicationUser, "replication-user", "streaming_replica", "role replicas and backups connect as")
	cmd.Flags().StringVar(&opts.Owner, "owner", "app", "application role whose password is set (created when missing)")
	cmd.Flags().StringVar(&opts.PassFile, "passfile", "", "a replica's replication passfile, as given to join (default: .<pgdata name>.pgpass beside the data directory)")
	cmd.Flags().StringVar(&opts.Health.Addr, "health-addr", "", "serve GET /readyz here (for example :8000): 200 for a primary that accepts writes or a replica that streams from the primary within --max-lag, else 503")
	cmd.Flags().StringVar(&maxLag, "max-lag", "64Mi", "how much WAL a streaming replica may have left to replay and still be ready (bytes, or a quantity such as 64Mi)")
	pw.bind(cmd.Flags())
	member.bind(cmd.Flags())
	tf.bind(cmd.Flags(), true)
	return cmd
}

// parseMaxLag reads --max-lag, a byte count or a quantity ("64Mi").
func parseMaxLag(s string) (int64, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Sign() < 0 {
		return 0, usageError{fmt.Errorf("--max-lag %q: want a byte count such as 67108864 or 64Mi", s)}
	}
	return q.Value(), nil
}

// passwordFiles are the files holding the superuser's, the replication
// role's and the app role's passwords; each falls back to its environment
// variable.
type passwordFiles struct{ super, repl, app string }

func (p *passwordFiles) bind(fs *pflag.FlagSet) {
	fs.StringVar(&p.super, "superuser-password-file", "", "file holding the superuser's password (else env "+envSuperuserPassword+")")
	fs.StringVar(&p.repl, "replication-password-file", "", "file holding the replication role's password (else env "+envReplicationPassword+")")
	fs.StringVar(&p.app, "app-password-file", "", "file holding the application role's password (else env "+envAppPassword+")")
}

func (p passwordFiles) read() (super, repl, app string, err error) {
	if super, err = instance.ReadSecret(p.super, envSuperuserPassword); err != nil {
		return "", "", "", err
	}
	if repl, err = instance.ReadSecret(p.repl, envReplicationPassword); err != nil {
		return "", "", "", err
	}
	app, err = instance.ReadSecret(p.app, envAppPassword)
	return super, repl, app, err
}

func newInstanceRejoinCommand() *cobra.Command {
	var opts instance.RunOptions
	var pw passwordFiles
	var primary, name string
	cmd := &cobra.Command{
		Use:   "rejoin --pgdata DIR --primary HOST:PORT --name NAME",
		Short: "Make a stopped former primary (or replica) a standby of the primary at HOST:PORT: pg_rewind, then its own slot; exit 3 when the rewind fails",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.PGData == "" || primary == "" || name == "" {
				return usageError{errors.New("--pgdata, --primary and --name are required")}
			}
			var err error
			if opts.SuperuserPassword, opts.ReplicationPassword, _, err = pw.read(); err != nil {
				return err
			}
			m := memberFlags{primary: primary}
			up, err := m.upstream(opts.ReplicationUser, opts.PassFile)
			if err != nil {
				return err
			}
			opts.Membership = instance.Membership{Name: name, Upstream: up}
			if err := instance.Rejoin(cmd.Context(), opts); err != nil {
				if instance.IsRewindFailure(err) {
					return withCode(instance.ExitRewindFailed, err)
				}
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.PGData, "pgdata", os.Getenv("PGDATA"), "data directory (env PGDATA)")
	cmd.Flags().StringVar(&opts.Superuser, "superuser", "postgres", "superuser role pg_rewind connects as")
	cmd.Flags().StringVar(&opts.ReplicationUser, "replication-user", "streaming_replica", "role the standby streams as")
	cmd.Flags().StringVar(&opts.PassFile, "passfile", "", "replication passfile (default: .<pgdata name>.pgpass beside the data directory)")
	cmd.Flags().StringVar(&primary, "primary", "", "the primary's HOST:PORT")
	cmd.Flags().StringVar(&name, "name", os.Getenv("POD_NAME"), "this instance's name: its replication slot and application_name")
	pw.bind(cmd.Flags())
	return cmd
}

func newInstancePromoteCommand() *cobra.Command {
	var pgdata string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "promote --pgdata DIR",
		Short: "Promote the replica running on DIR to primary and wait until it accepts writes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pgdata == "" {
				return usageError{errors.New("--pgdata (or PGDATA) is required")}
			}
			return instance.Promote(cmd.Context(), pgdata, timeout)
		},
	}
	cmd.Flags().StringVar(&pgdata, "pgdata", os.Getenv("PGDATA"), "data directory (env PGDATA)")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the promotion")
	return cmd
}

func newInstanceStatusCommand() *cobra.Command {
	var pgdata, user string
	cmd := &cobra.Command{
		Use:   "status --pgdata DIR",
		Short: "Print role, timeline, LSNs and each standby's lag as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pgdata == "" {
				return usageError{errors.New("--pgdata (or PGDATA) is required")}
			}
			db, err := instance.Connect(pgdata, user)
			if err != nil {
				return err
			}
			defer func() { _ = db.Close() }()
			st, err := instance.GetStatus(cmd.Context(), db)
			if err != nil {
				return err
			}
			return printJSON(st)
		},
	}
	cmd.Flags().StringVar(&pgdata, "pgdata", os.Getenv("PGDATA"), "data directory of the running server (env PGDATA)")
	cmd.Flags().StringVar(&user, "user", "postgres", "superuser to connect as over the unix socket")
	return cmd
}

func newInstanceSyncStandbysCommand() *cobra.Command {
	var pgdata, user string
	cmd := &cobra.Command{
		Use:   "sync-standbys --pgdata DIR VALUE",
		Short: "Set synchronous_standby_names (ALTER SYSTEM + reload), e.g. 'ANY 1 (db_1, db_2)'; '' for asynchronous",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pgdata == "" {
				return usageError{errors.New("--pgdata (or PGDATA) is required")}
			}
			db, err := instance.Connect(pgdata, user)
			if err != nil {
				return err
			}
			defer func() { _ = db.Close() }()
			return instance.SetSynchronousStandbys(cmd.Context(), db, args[0])
		},
	}
	cmd.Flags().StringVar(&pgdata, "pgdata", os.Getenv("PGDATA"), "data directory of the running server (env PGDATA)")
	cmd.Flags().StringVar(&user, "user", "postgres", "superuser to connect as over the unix socket")
	return cmd
}
